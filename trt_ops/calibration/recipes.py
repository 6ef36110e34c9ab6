"""Quantization recipes: where the int8 goes, chosen from the graph and recorded.

- ``static``: Q/DQ with activation ranges calibrated on the calibration set. Right for CNNs:
  onnxruntime fuses the pairs into QLinearConv, TensorRT into int8 kernels. On a transformer
  (``static-transformer``) only MatMul/Gemm inputs are quantized, and so calibrated: the mask's
  Add, Softmax and LayerNorm stay float, and no range ever sees the float minimum.
- ``dynamic`` (onnxruntime): int8 weights for MatMul/Gemm (per channel); activations are
  quantized at run time from each batch's own range. Nothing else is touched: Softmax,
  LayerNorm, GELU and the attention mask's Add (which adds the float minimum, and breaks
  calibrated ranges) stay float. The MatMuls fed by a GELU (a transformer's FFN down
  projections) stay float too: their inputs are heavy-tailed, the largest error source.
- For TensorRT, a transformer gets encoder settings for Model Optimizer: Q/DQ for MatMul and
  Gemm (plus the residual Adds it pairs with them for TensorRT's fusions), the attention's
  MatMuls left float (``disable_mha_qdq``), so Softmax, LayerNorm and the mask's Add stay float
  and TensorRT keeps its fused attention.

``auto`` picks ``dynamic`` (onnxruntime) or the encoder settings (TensorRT) for a transformer
and ``static`` otherwise. A graph is a transformer when it has a Softmax and weight MatMuls
(Gemm) and a normalization (LayerNormalization, or its ReduceMean decomposition).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trt_ops.errors import SpecError

RECIPES = ("auto", "static", "dynamic")
GELU_OPS = ("Gelu", "FastGelu", "BiasGelu", "Erf", "Tanh")


@dataclasses.dataclass
class Recipe:
    name: str                       # static | dynamic | static-transformer
    reason: str                     # why it was chosen, for the manifest
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # calibrator arguments

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def graph_traits(model: Any) -> dict[str, int]:
    """Op counts that tell a transformer from a CNN."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    weight_matmuls = sum(1 for n in graph.node if n.op_type in ("MatMul", "Gemm")
                         and any(i in weights for i in n.input))
    return {"softmax": ops.get("Softmax", 0), "weight_matmuls": weight_matmuls,
            "layernorm": ops.get("LayerNormalization", 0) + ops.get("ReduceMean", 0),
            "conv": ops.get("Conv", 0)}


def is_transformer(traits: dict[str, int]) -> bool:
    return traits["softmax"] > 0 and traits["weight_matmuls"] > 0 and traits["layernorm"] > 0


def gelu_fed_matmuls(model: Any) -> list[str]:
    """Weight MatMul/Gemm nodes whose activation input comes from a GELU (FFN down projections).

    Looks up through element-wise ops (Mul, Add, Div) that make up a decomposed GELU.
    """
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def from_gelu(value: str, depth: int = 4) -> bool:
        node = producer.get(value)
        if node is None or depth == 0:
            return False
        if node.op_type in GELU_OPS:
            return True
        if node.op_type in ("Mul", "Add", "Div", "Cast"):
            return any(from_gelu(i, depth - 1) for i in node.input if i not in weights)
        return False

    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")
            and any(i in weights for i in n.input)
            and any(from_gelu(i) for i in n.input if i not in weights)]


def choose(model: Any, backend: str, precision: str, requested: str = "auto") -> Recipe:
    """The recipe for ``model`` (an onnx ModelProto) on ``backend`` at ``precision``."""
    if requested not in RECIPES:
        raise SpecError(f"unknown quantization recipe {requested!r}", f"use one of {list(RECIPES)}")
    traits = graph_traits(model)
    transformer = is_transformer(traits)
    if backend == "tensorrt":
        if requested == "dynamic":
            raise SpecError("the dynamic recipe is onnxruntime's; TensorRT needs Q/DQ with "
                            "calibrated ranges",
                            "use calibration.recipe auto or static for TensorRT targets")
        if transformer and requested == "auto":
            return Recipe("static-transformer", f"transformer graph ({traits}): Model "
                          "Optimizer's encoder settings", {
                              "op_types_to_quantize": ["MatMul", "Gemm"],
                              "disable_mha_qdq": True})
        return Recipe("static", f"{requested} ({traits})")
    if precision != "int8":
        return Recipe("static", f"{precision} is placed statically")
    if requested == "static" and transformer:
        return Recipe("static-transformer", f"requested static on a transformer graph ({traits})",
                      {"op_types": ["MatMul", "Gemm"], "keep_float": gelu_fed_matmuls(model)})
    if requested == "dynamic" or (requested == "auto" and transformer):
        keep = gelu_fed_matmuls(model)
        why = ("requested" if requested == "dynamic" else
               f"transformer graph ({traits}): calibrated ranges break on the attention mask's "
               "float minimum")
        return Recipe("dynamic", why, {"op_types": ["MatMul", "Gemm"], "per_channel": True,
                                       "keep_float": keep})
    return Recipe("static", f"{requested} ({traits})")
