"""The layer report of a TensorRT engine: what the builder made of the ONNX graph.

Input is the engine inspector's JSON (``IEngineInspector.get_engine_information(JSON)``, built
with ``ProfilingVerbosity.DETAILED``); output is a JSON-able report saved beside the engine:
one row per engine layer (type, precision, tactic, the ONNX nodes it covers) and a summary
(ONNX nodes vs engine layers, layers per precision and type, what was fused).

Reads both schemas: TensorRT 10.x (``Bindings`` as names, tensors with ``Format/Datatype``)
and 11.x (``I/O Tensors`` as objects, ``Format`` and ``DataType`` split). Needs no TensorRT.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

# One ONNX node per "[ONNX Layer: name]" in a layer's Metadata (separated by \x1e or \x1f)
_ONNX_NODE = re.compile(r"\[ONNX Layer: ([^\]]+)\]")

# Inspector datatype words, as they appear alone (11.x DataType, 10.x kgen layers) or inside
# a 10.x format description ("Thirty-two wide channel vectorized row major Int8 format.")
_PRECISIONS = {
    "float": "fp32", "fp32": "fp32", "half": "fp16", "fp16": "fp16", "bfloat16": "bf16",
    "bf16": "bf16", "int8": "int8", "fp8": "fp8", "int4": "int4", "fp4": "fp4",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool",
}
# Layers the builder adds to move data, not to compute: not counted as fusions
_DATA_MOVEMENT = ("Reformat", "NoOp", "Shuffle", "signal", "wait")


def tensor_precision(tensor: dict[str, Any]) -> str | None:
    """The precision of one inspector tensor entry, e.g. ``int8``; None if it names none."""
    desc = tensor.get("DataType") or tensor.get("Format/Datatype") or ""
    for word in re.split(r"[\s.,()]+", str(desc)):
        if word.lower() in _PRECISIONS:
            return _PRECISIONS[word.lower()]
    return None


def layer_precision(layer: dict[str, Any]) -> str | None:
    """What a layer computes in: its weights' type, else its first typed input, else output.

    Weights first because a Q/DQ convolution reads int8 weights even where the inspector shows
    a float input region; then inputs, the convention of NVIDIA's engine explorer (trex).
    """
    weights = layer.get("Weights")
    typed = [{"DataType": weights.get("Type")}] if isinstance(weights, dict) else []
    for tensor in [*typed, *layer.get("Inputs", []), *layer.get("Outputs", [])]:
        found = tensor_precision(tensor)
        if found:
            return found
    return None


def onnx_nodes(layer: dict[str, Any]) -> list[str]:
    """The ONNX nodes an engine layer implements, from its Metadata (empty if none recorded)."""
    return _ONNX_NODE.findall(str(layer.get("Metadata", "")))


def _layers(info: dict[str, Any] | list[Any]) -> list[dict[str, Any]]:
    raw = info.get("Layers", []) if isinstance(info, dict) else info
    # Below DETAILED verbosity a layer is only its name; "a + b" is still a fusion of a and b
    return [
        layer if isinstance(layer, dict) else {"Name": str(layer), "LayerType": "unknown"}
        for layer in raw
    ]


def io_tensors(info: dict[str, Any] | list[Any]) -> list[str]:
    """Engine input and output names: 10.x ``Bindings`` (names) or 11.x ``I/O Tensors``."""
    if not isinstance(info, dict):
        return []
    if "I/O Tensors" in info:
        return [str(t.get("Name")) for t in info["I/O Tensors"]]
    return [b if isinstance(b, str) else str(b.get("Name")) for b in info.get("Bindings", [])]


def build_report(inspector_json: str | dict[str, Any], onnx_node_count: int | None = None,
                 onnx_op_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A JSON-able layer report from the inspector's output and the source ONNX's node counts."""
    info = json.loads(inspector_json) if isinstance(inspector_json, str) else inspector_json
    rows = []
    for layer in _layers(info):
        nodes = onnx_nodes(layer)
        if not nodes and " + " in layer["Name"]:
            nodes = [n.strip() for n in layer["Name"].split(" + ")]
        rows.append({
            "name": layer["Name"],
            "type": layer.get("LayerType", "unknown"),
            "precision": layer_precision(layer),
            "onnx_nodes": nodes,
            "tactic": layer.get("TacticName"),
        })
    compute = [r for r in rows if r["type"] not in _DATA_MOVEMENT]
    fused = [{"layer": r["name"], "onnx_nodes": r["onnx_nodes"]}
             for r in compute if len(r["onnx_nodes"]) > 1]
    covered = {n for r in rows for n in r["onnx_nodes"]}
    summary = {
        "onnx_nodes": onnx_node_count,
        "engine_layers": len(rows),
        "compute_layers": len(compute),
        "reformat_layers": sum(r["type"] == "Reformat" for r in rows),
        "fused_layers": len(fused),
        "onnx_nodes_in_fusions": sum(len(f["onnx_nodes"]) for f in fused),
        "onnx_nodes_named_in_engine": len(covered),
        "layers_by_precision": dict(Counter(str(r["precision"]) for r in compute)),
        "layers_by_type": dict(Counter(r["type"] for r in rows)),
        "io_tensors": io_tensors(info),
    }
    if onnx_op_counts is not None:
        summary["onnx_ops"] = dict(onnx_op_counts)
    return {"summary": summary, "fused": fused, "layers": rows}


def summary_line(report: dict[str, Any]) -> str:
    """One line for logs, e.g. ``52 ONNX nodes -> 21 engine layers (int8: 18, fp32: 2); 9 fused``."""
    s = report["summary"]
    precisions = ", ".join(f"{k}: {v}" for k, v in sorted(s["layers_by_precision"].items(),
                                                        key=lambda kv: -kv[1]))
    onnx = "?" if s["onnx_nodes"] is None else s["onnx_nodes"]
    return (f"{onnx} ONNX nodes -> {s['engine_layers']} engine layers ({precisions}); "
            f"{s['fused_layers']} fused")


def onnx_node_counts(onnx_path: Path) -> tuple[int, dict[str, int]]:
    """Node count and op histogram of an ONNX file (weights not loaded)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    return sum(ops.values()), dict(ops)
