"""Model Optimizer calibration for TensorRT: what it is asked for is what the graph holds.

Calibrators run in their own process (trt_ops.calibration.isolated), as in the pipeline:
Model Optimizer patches onnxruntime's quantizer for the whole process it is imported in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tensorrt.conftest import Calibrated
from tests.tensorrt.standin import use_standin, versions
from trt_ops.calibration.modelopt import modelopt_method
from trt_ops.errors import DataError, PrecisionError


def tensor_types(path: Path) -> set[int]:
    """Element types of every initializer and typed value of an ONNX graph."""
    import onnx

    graph = onnx.load(str(path)).graph
    typed = [*graph.input, *graph.output, *graph.value_info]
    return {i.data_type for i in graph.initializer} | {v.type.tensor_type.elem_type for v in typed}


def calibrate_here(d: Calibrated, tmp_path: Path, precision: str,
                   **kwargs: Any) -> tuple[dict, Path]:
    """A Model Optimizer calibrator run in a child process on the digits ONNX."""
    from trt_ops.calibration import isolated
    from trt_ops.data.datasets import load_dataset, write_npz

    onnx_in = tmp_path / "in.onnx"
    onnx_in.symlink_to(d.store.fetch(d.export.artifact("onnx")))
    data = load_dataset(d.spec.data.calibration, d.inputs, "calibration")
    npz = write_npz(tmp_path / "calib.npz", data, 64)
    out = tmp_path / f"out.{precision}.onnx"
    calibrator = "modelopt_quantize" if precision in ("int8", "fp8") else "autocast"
    info = isolated.call(f"trt_ops.calibration.modelopt:{calibrator}", onnx_in=str(onnx_in),
                         onnx_out=str(out), data_npz=str(npz), precision=precision, **kwargs)
    return info, out


def test_method_per_precision_is_decided_in_one_place() -> None:
    assert modelopt_method("int8", None) == ("entropy", None)
    assert modelopt_method("int8", "max") == ("max", None)
    assert modelopt_method("fp8", None) == ("max", None)
    used, why = modelopt_method("fp8", "entropy")  # the spec's default method
    assert used == "max" and "max only" in (why or "")
    with pytest.raises(DataError, match=r"use one of \['entropy', 'max'\]"):
        modelopt_method("int8", "percentile")
    with pytest.raises(PrecisionError):
        modelopt_method("fp16", "max")


def test_int8_is_int8_and_fp32_elsewhere(trt_digits: Calibrated) -> None:
    """Model Optimizer's default would make every node without Q/DQ fp16."""
    import onnx

    info = trt_digits.int8.info
    assert info["high_precision_dtype"] == "fp32" and info["method"] == "entropy"
    assert trt_digits.int8.spec["high_precision_dtype"] == "fp32"
    types = tensor_types(trt_digits.store.fetch(trt_digits.int8.artifact("onnx")))
    assert onnx.TensorProto.INT8 in types and onnx.TensorProto.FLOAT16 not in types


def test_int8_with_fp16_elsewhere_when_asked(trt_digits: Calibrated, tmp_path: Path) -> None:
    """The control of the test above: asking for fp16 does put fp16 in the graph."""
    import onnx

    info, out = calibrate_here(trt_digits, tmp_path, "int8", high_precision_dtype="fp16")
    assert info["high_precision_dtype"] == "fp16"
    assert onnx.TensorProto.FLOAT16 in tensor_types(out)


def test_quantized_models_over_the_threshold_keep_external_data(trt_digits: Calibrated,
                                                              tmp_path: Path) -> None:
    import onnxruntime as ort

    info, out = calibrate_here(trt_digits, tmp_path, "int8", external_data_threshold=0)
    assert info["external_data"] and (tmp_path / "out.int8.onnx_data").stat().st_size > 0
    images = np.zeros((2, 1, 8, 8), np.float32)
    assert ort.InferenceSession(str(out)).run(None, {"image": images})[0].shape == (2, 10)


def test_fp8_is_calibrated_with_max(trt_digits: Calibrated, tmp_path: Path) -> None:
    import onnx

    info, out = calibrate_here(trt_digits, tmp_path, "fp8", method="entropy")
    assert info["method"] == "max" and info["requested_method"] == "entropy"
    assert onnx.TensorProto.FLOAT8E4M3FN in tensor_types(out)


def test_autocast_refuses_to_judge_on_random_inputs(tmp_path: Path) -> None:
    from trt_ops.calibration.modelopt import autocast

    with pytest.raises(DataError, match="AutoCast for fp16 got no calibration data"):
        autocast(str(tmp_path / "in.onnx"), str(tmp_path / "out.onnx"), "fp16", data_npz=None)


def test_fp16_gets_the_data_and_large_models_keep_external_data(trt_digits: Calibrated) -> None:
    """The calibrate stage hands AutoCast the calibration data; a model over the external-data
    threshold (2 GB, lowered here) is stored with its weights file, and builds from it."""
    from trt_ops.engines.contract import engine_from_metadata
    from trt_ops.engines.tensorrt.backend import TensorRTBackend
    from trt_ops.stages.build import build_engine
    from trt_ops.stages.calibrate import calibrate

    d = trt_digits
    fp16 = calibrate(d.export, d.spec.data.calibration, d.inputs, "fp16", "tensorrt", d.store,
                     samples=64, external_data_threshold=0)
    assert fp16.info["calibrator"] == "modelopt.onnx.autocast" and fp16.info["samples"] == 64
    assert fp16.inputs["calibration_data"] and fp16.info["external_data"] == "model.fp16.onnx_data"
    assert fp16.artifacts["onnx_data"].size > 0
    with use_standin(versions()[0]):
        build = build_engine(fp16, "h100", d.store, profile=d.spec.profile())
        engine = engine_from_metadata(build.info["metadata"])
        images = np.load(d.folder / "validation.npz")["image"][:8].astype(np.float32)
        with TensorRTBackend().load(d.store.fetch(build.artifact("engine")), engine) as runner:
            out = runner.infer({"image": images})[runner.output_names[0]]
    assert out.shape == (8, 10) and np.isfinite(out).all()


def test_autocast_of_external_weights_matches_the_in_memory_conversion(tmp_path: Path) -> None:
    """A model whose weights lie in external data (over 2 GB) is converted without loading
    them, to the same fp16 model as when they are in memory: same nodes kept in fp32, same
    weights, bit for bit (a weight beyond fp16 keeps its node fp32, large activations keep
    theirs; values below fp16's subnormals are replaced)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from trt_ops.calibration import isolated

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((16, 64), dtype=np.float32)
    w0[0, 10:13] = 1e-9  # below fp16's smallest subnormal
    w1 = rng.standard_normal((64, 64), dtype=np.float32)
    w1[0, 0] = 1e6  # beyond fp16: its node stays fp32, and so do those of its large outputs
    w2 = rng.standard_normal((64, 10), dtype=np.float32)
    weights = [numpy_helper.from_array(a, n) for a, n in ((w0, "w0"), (w1, "w1"), (w2, "w2"))]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"], name="mm0"),
             helper.make_node("Relu", ["h0"], ["r0"], name="relu0"),
             helper.make_node("MatMul", ["r0", "w1"], ["h1"], name="mm1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["y"], name="mm2")]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((8, 16), dtype=np.float32))
    results = {}
    for kind in ("memory", "external"):
        folder = tmp_path / kind
        folder.mkdir()
        onnx.save(model, str(folder / "in.onnx"), save_as_external_data=kind == "external",
                  location="in.onnx.data", size_threshold=0)
        info = isolated.call("trt_ops.calibration.modelopt:autocast", onnx_in=str(folder / "in.onnx"),
                             onnx_out=str(folder / "out.onnx"), data_npz=str(tmp_path / "calib.npz"),
                             precision="fp16")
        out = onnx.load(str(folder / "out.onnx"))
        results[kind] = (info, [(n.name, n.op_type, list(n.input)) for n in out.graph.node],
                         {t.name: numpy_helper.to_array(t, str(folder)) for t in out.graph.initializer})
    (info_m, nodes_m, inits_m), (info_e, nodes_e, inits_e) = results["memory"], results["external"]
    assert info_e["external_data"] and (tmp_path / "external" / "out.onnx_data").stat().st_size
    assert nodes_e == nodes_m and info_e["casts"] == info_m["casts"] > 0
    assert inits_e.keys() == inits_m.keys()
    for name, array in inits_m.items():
        assert inits_e[name].dtype == array.dtype and np.array_equal(inits_e[name], array), name
    kinds = {str(a.dtype) for a in inits_m.values()}
    assert kinds == {"float16", "float32"}, kinds  # a mixed model: both rules took effect
