"""PyTorch to ONNX: the dynamo exporter first, TorchScript as the fallback; parity with PyTorch.

Every named dynamic axis becomes one ``torch.export.Dim`` shared by the inputs that name it.
Input and output names from the spec are given after export, in the ONNX IR: a value inside
the graph that already carries such a name (the exporter names values after ops, e.g.
``embedding``) is renamed first, so the graph stays in SSA form.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_ops.errors import ExportError
from trt_ops.spec import InputSpec


def torch_outputs(model: Any, feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    """The model's outputs flattened in the exporter's order (tuples, dicts, model outputs)."""
    import torch
    from torch.utils import _pytree

    with torch.inference_mode():
        out = model(*(torch.from_numpy(feeds[n]) for n in names))
    leaves = [v for v in _pytree.tree_leaves(out) if isinstance(v, torch.Tensor)]
    return [o.detach().cpu().numpy() for o in leaves]


def dynamic_shapes(inputs: Sequence[InputSpec], dims: Mapping[str, Mapping[str, int]]) -> tuple:
    """One ``torch.export.Dim`` per named axis (shared across inputs); fixed where min == max."""
    import torch

    made = {name: torch.export.Dim(name, min=r["min"], max=r["max"])
            for name, r in dims.items() if r["min"] < r["max"]}
    return tuple({axis: made[name] for axis, name in i.dynamic_axes.items() if name in made}
                 for i in inputs)


def _unique(name: str, taken: set[str]) -> str:
    n = 1
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def name_values(graph: Any, input_names: Sequence[str], output_names: Sequence[str]) -> None:
    """Gives the graph's inputs and outputs their names (an onnx_ir graph, in place)."""
    outputs = list(graph.outputs)
    if len(output_names) > len(outputs):
        raise ExportError(
            f"the spec names {len(output_names)} outputs {list(output_names)}, the model produces "
            f"{len(outputs)} ({[v.name for v in outputs]})",
            f"list at most {len(outputs)} names in model.outputs, in the order forward() "
            "returns them")
    targets = {id(v): n for v, n in zip(graph.inputs, input_names)}
    targets.update({id(v): n for v, n in zip(outputs, output_names)})
    wanted = set(targets.values())
    values = [*graph.inputs, *graph.initializers.values(), *(o for node in graph for o in node.outputs)]
    taken = {v.name for v in values if v.name}
    for v in values:  # a value inside the graph holding a wanted name gives it up first
        if v.name in wanted and targets.get(id(v)) != v.name:
            new = _unique(v.name, taken | wanted)
            taken.add(new)
            if v.is_initializer():
                graph.initializers.pop(v.name)
                v.name = new
                graph.register_initializer(v)
            else:
                v.name = new
    for v in [*graph.inputs, *outputs]:
        if id(v) in targets:
            v.name = targets[id(v)]


def export_to_onnx(model: Any, feeds: dict[str, np.ndarray], inputs: Sequence[InputSpec],
                   output_names: list[str], path: Path, opset: int | None, external: bool,
                   dims: Mapping[str, Mapping[str, int]]) -> str:
    import torch

    args = tuple(torch.from_numpy(feeds[i.name]) for i in inputs)
    names = [i.name for i in inputs]
    try:
        program = torch.onnx.export(
            model, args, dynamo=True, dynamic_shapes=dynamic_shapes(inputs, dims),
            opset_version=opset, optimize=True, verbose=False)
    except Exception as dynamo_exc:  # noqa: BLE001 - any failure falls back to TorchScript
        reason = str(dynamo_exc).strip().splitlines()[0][:300]
        warnings.warn(
            f"the dynamo exporter failed ({type(dynamo_exc).__name__}: {reason}); falling back to "
            "the TorchScript exporter, which traces one execution path and is deprecated. Fix "
            "the model for torch.export to get the supported path.", stacklevel=2)
        return _torchscript(model, args, inputs, output_names, path, opset, reason)
    name_values(program.model.graph, names, output_names)
    program.save(str(path), external_data=external)
    # the saved graph lets go of the model's weights: onnxscript's rewrite rules keep the last
    # graph they matched (module globals), which would keep every parameter alive after the
    # caller frees the model, and a model over 2 GB would then be held twice
    for value in program.model.graph.initializers.values():
        value.const_value = None
    return "dynamo"


def _torchscript(model: Any, args: tuple, inputs: Sequence[InputSpec], output_names: list[str],
                 path: Path, opset: int | None, reason: str) -> str:
    import torch

    names = [i.name for i in inputs]
    axes = {i.name: {a: n for a, n in i.dynamic_axes.items()} for i in inputs}
    try:
        torch.onnx.export(
            model, args, str(path), dynamo=False, input_names=names,
            output_names=output_names or None, opset_version=opset or 17,
            dynamic_axes={**axes, **{n: {0: "batch"} for n in output_names}})
        return "torchscript"
    except Exception as ts_exc:
        ts_reason = str(ts_exc).strip().splitlines()[0][:300]
        raise ExportError(
            f"neither ONNX exporter can handle this model. dynamo: {reason} | "
            f"TorchScript: {type(ts_exc).__name__}: {ts_reason}",
            "replace the unsupported operation with ONNX-exportable ops (or register a "
            "custom translation for it with torch.onnx), then export again") from ts_exc


def compare(reference: list[np.ndarray], actual: list[np.ndarray], names: Sequence[str]) -> dict[str, dict[str, float]]:
    errors = {}
    for name, r, a in zip(names, reference, actual):
        if r.shape != a.shape:
            raise ExportError(f"output {name!r} has shape {list(a.shape)} in the ONNX and "
                              f"{list(r.shape)} in PyTorch",
                              "check the dynamic axes in model.dims against the model")
        diff = np.abs(a.astype(np.float64) - r.astype(np.float64))
        scale = max(float(np.abs(r).max()), 1e-12) if r.size else 1.0
        errors[name] = {"max_abs_error": float(diff.max()) if diff.size else 0.0,
                        "max_rel_error": float(diff.max() / scale) if diff.size else 0.0}
    return errors
