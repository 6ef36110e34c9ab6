"""Model Optimizer's int8 for TensorRT on a transformer: the encoder settings chosen from the
graph, the spec's method mapped to Model Optimizer's name, calibrated on the CPU over samples of
different lengths (padded: its calibrator takes one array per input)."""

from __future__ import annotations

import pytest

pytest.importorskip("modelopt.onnx.quantization", reason="needs the modelopt extra")


def test_transformer_int8_for_tensorrt_keeps_softmax_and_the_mask_float(encoder_run,
                                                                       encoder_dir) -> None:
    import onnx

    from tests.dynamic.conftest import DIMS, INPUTS
    from trt_ops.spec import InputSpec
    from trt_ops.stages.calibrate import calibrate
    from trt_ops.store import open_store

    store = open_store(encoder_run.store)
    cal = calibrate(encoder_run.export, str(encoder_dir / "calibration.npz"),
                    [InputSpec(**i) for i in INPUTS], "int8", "tensorrt", store, samples=16,
                    method="minmax", dims=DIMS)
    assert cal.spec["backend_method"] == "max"  # the spec's minmax, in Model Optimizer's words
    assert cal.spec["recipe"]["name"] == "static-transformer"
    assert cal.info["settings"] == {"op_types_to_quantize": ["MatMul", "Gemm"],
                                    "disable_mha_qdq": True}
    graph = onnx.load(str(store.fetch(cal.artifact("onnx")))).graph
    producers = {o: n for n in graph.node for o in n.output}
    [softmax] = [n for n in graph.node if n.op_type == "Softmax"]
    mask_add = producers[softmax.input[0]]  # the scores plus the mask's float minimum
    assert mask_add.op_type == "Add"
    for node in (softmax, mask_add):  # no Q/DQ on the mask or the attention probabilities
        assert all(producers[i].op_type != "DequantizeLinear" for i in node.input
                   if i in producers), node.name
    dequantized = {n.op_type for n in graph.node for i in n.input
                   if i in producers and producers[i].op_type == "DequantizeLinear"}
    assert cal.info["ops"]["QuantizeLinear"] and "MatMul" in dequantized
