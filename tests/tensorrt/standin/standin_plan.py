"""The TensorRT stand-in's plans: what its builder checks and writes, and the engine layers it
reports. Tests only; see :mod:`.tensorrt_standin`.

A stand-in plan is a header (the build's facts: version, GPU, compatibility flags, strong
typing, optimization level, profile, I/O tensors, layers, tactics timed or taken from the
timing cache) followed by the ONNX the network was parsed from.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

from tests.tensorrt.standin.tensorrt_standin import StandinState, signature

if TYPE_CHECKING:
    from tests.tensorrt.standin.tensorrt_standin import BuilderConfig, NetworkDefinition

MAGIC = b"TRT-STANDIN-PLAN\n"
_FUSED_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip")


def plan_bytes(state: StandinState, network: NetworkDefinition,
               config: BuilderConfig) -> bytes | None:
    """Checks the network and config as TensorRT's builder does, then writes the plan."""
    import onnx

    model = onnx.load_from_string(network._onnx)
    profile = config._profiles[0]._shapes if config._profiles else {}
    for t in network._inputs:
        dims = [int(t.shape[i]) for i in range(len(t.shape))]
        shapes = profile.get(t.name)
        if shapes is None:
            if any(d < 0 for d in dims):
                state.error(f"network input {t.name!r} has dynamic dims {dims}, but no "
                            "optimization profile defines them")
                return None
            profile[t.name] = [dims, dims, dims]
            continue
        low, opt, high = shapes
        if any(len(s) != len(dims) for s in shapes) or any(
                d >= 0 and not lo == op == hi == d for d, lo, op, hi in zip(dims, low, opt, high)) \
                or not all(a <= b <= c for a, b, c in zip(low, opt, high)):
            state.error(f"optimization profile of {t.name!r} {shapes} does not fit its dims {dims}")
            return None
    unknown = sorted(set(profile) - {t.name for t in network._inputs})
    if unknown:
        state.error(f"optimization profile names {unknown}, which are not network inputs")
        return None
    layers = layers_of(model)
    cache = config._cache
    timed = reused = 0
    for layer in layers:  # "time" each layer's tactics unless the cache has them
        key = signature(layer["kinds"], layer["precision"], config.builder_optimization_level)
        if cache is not None and key in cache._entries:
            reused += 1
        else:
            timed += 1
            if cache is not None:
                cache._entries[key] = 1.0
    flags = config._flags
    params = {v.name: [d.dim_param if d.HasField("dim_param") else None
                       for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.input, *model.graph.output]}
    header = {
        "version": state.version, "gpu_product": state.gpu_product,
        "compute_capability": state.compute_capability,
        "hardware_compatibility": config.hardware_compatibility_level.name,
        "version_compatible": "VERSION_COMPATIBLE" in flags,
        "exclude_lean_runtime": "EXCLUDE_LEAN_RUNTIME" in flags,
        "strongly_typed": network._strongly_typed,
        "profiling_verbosity": config.profiling_verbosity.name,
        "optimization_level": config.builder_optimization_level,
        "profile": profile, "layers": layers, "tactics": {"timed": timed, "from_cache": reused},
        "io": [{"name": t.name, "mode": mode, "dtype": t.dtype.name,
                "shape": [int(t.shape[i]) for i in range(len(t.shape))],
                "params": params.get(t.name, [])}
               for mode, tensors in (("INPUT", network._inputs), ("OUTPUT", network._outputs))
               for t in tensors],
    }
    head = json.dumps(header).encode()
    return MAGIC + struct.pack("<Q", len(head)) + head + network._onnx


def read_plan(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    if not data.startswith(MAGIC):
        return None
    start = len(MAGIC) + 8
    (size,) = struct.unpack("<Q", data[len(MAGIC):start])
    return json.loads(data[start:start + size]), data[start + size:]


def layers_of(model: Any) -> list[dict[str, Any]]:
    """Engine layers as TensorRT fuses a Q/DQ graph: each compute node with the DequantizeLinear
    nodes feeding it, a following activation and the QuantizeLinear nodes after it."""
    import onnx

    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*graph.input, *graph.value_info, *graph.output]}
    types.update({i.name: i.data_type for i in graph.initializer})
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    taken: set[str] = set()
    layers = []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant") or node.name in taken:
            continue
        group, main = [node], [node]
        for i in node.input:
            dq = producer.get(i)
            if dq is not None and dq.op_type == "DequantizeLinear":
                group.append(dq)
                q = producer.get(dq.input[0])
                if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in producer:
                    group.append(q)  # a weight quantizer folds into the layer
        out = node.output[0]
        nxt = consumers.get(out, [])
        if len(nxt) == 1 and nxt[0].op_type in _FUSED_ACTIVATIONS:
            group.append(nxt[0])
            main.append(nxt[0])
            out = nxt[0].output[0]
        group += [c for c in consumers.get(out, []) if c.op_type == "QuantizeLinear"]
        taken.update(n.name for n in group)
        dq_types = {types.get(n.input[0]) for n in group if n.op_type == "DequantizeLinear"}
        first = types.get(node.input[0]) if node.input else onnx.TensorProto.FLOAT
        precision = ("INT8" if onnx.TensorProto.INT8 in dq_types else
                     "FP8" if onnx.TensorProto.FLOAT8E4M3FN in dq_types else
                     {onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.BFLOAT16: "BF16"}
                     .get(first or 0, "FLOAT"))
        layers.append({"name": " + ".join(n.name for n in main),
                       "kinds": [n.op_type for n in main], "precision": precision,
                       "onnx_nodes": [n.name for n in group],
                       "inputs": [i for i in node.input if i in types and i not in
                                  {x.name for x in graph.initializer}][:1], "output": out})
    return layers
