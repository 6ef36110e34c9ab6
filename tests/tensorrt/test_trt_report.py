"""Layer reports from engine-inspector JSON, for both inspector schemas (needs no TensorRT).

The samples in data/ are hand-written after NVIDIA's documented inspector output for an int8
Q/DQ build of the digits CNN: 10.x (``Bindings``, ``Format/Datatype``) and 11.x (``I/O
Tensors``, ``Format`` and ``DataType`` apart).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_ops.engines.tensorrt.layer_report import (
    build_report,
    layer_precision,
    summary_line,
    tensor_precision,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("sample", ["inspector_trt10_int8.json", "inspector_trt11_int8.json"])
def test_summary_of_an_int8_engine(sample: str) -> None:
    report = build_report((DATA / sample).read_text(), onnx_node_count=52,
                          onnx_op_counts={"QuantizeLinear": 6, "DequantizeLinear": 11, "Conv": 3})
    s = report["summary"]
    assert (s["onnx_nodes"], s["engine_layers"], s["compute_layers"], s["reformat_layers"]) == (52, 9, 8, 1)
    assert s["layers_by_precision"] == {"int8": 7, "fp32": 1}  # only the input quantizer reads fp32
    assert s["fused_layers"] == 5
    assert s["io_tensors"] == ["image", "logits"]
    assert s["onnx_ops"]["DequantizeLinear"] == 11
    first_conv = next(f for f in report["fused"] if f["layer"] == "/0/Conv + /2/Relu")
    assert first_conv["onnx_nodes"] == ["/0/input_quantizer/DequantizeLinear",
                                        "/0/weight_quantizer/DequantizeLinear", "/0/Conv", "/2/Relu",
                                        "/3/input_quantizer/QuantizeLinear"]
    assert summary_line(report) == "52 ONNX nodes -> 9 engine layers (int8: 7, fp32: 1); 5 fused"
    json.dumps(report)  # saved beside the engine: must be JSON-able


def test_both_schemas_give_the_same_layers() -> None:
    ten = build_report((DATA / "inspector_trt10_int8.json").read_text())
    eleven = build_report((DATA / "inspector_trt11_int8.json").read_text())
    assert ten["layers"] == eleven["layers"]


def test_layer_names_only_verbosity_still_shows_fusions() -> None:
    """Below DETAILED verbosity the inspector gives names only; "a + b" still means fused."""
    report = build_report({"Layers": ["/0/Conv + /2/Relu", "/6/MaxPool"], "Bindings": ["x", "y"]})
    assert report["summary"]["fused_layers"] == 1
    assert report["layers"][1]["precision"] is None


@pytest.mark.parametrize("tensor, precision", [
    ({"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}, "int8"),
    ({"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}, "fp16"),
    ({"Format/Datatype": "Half"}, "fp16"),
    ({"Format/Datatype": "Row major linear FP8 format"}, "fp8"),
    ({"Format": "Row major linear FP32 format (kLINEAR)", "DataType": "Float"}, "fp32"),
    ({"DataType": "BFloat16"}, "bf16"),
    ({"Format/Datatype": "Unknown format"}, None),
])
def test_tensor_precision(tensor: dict, precision: str | None) -> None:
    assert tensor_precision(tensor) == precision


def test_weights_decide_a_layers_precision() -> None:
    layer = {"Inputs": [{"Format/Datatype": "Row major linear FP32"}], "Weights": {"Type": "Int8", "Count": 9}}
    assert layer_precision(layer) == "int8"
