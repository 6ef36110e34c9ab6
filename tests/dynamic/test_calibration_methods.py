"""One vocabulary of calibration methods, mapped per backend; the recipe chosen from the graph."""

from __future__ import annotations

import pytest

from trt_ops.calibration.methods import backend_method
from trt_ops.errors import SpecError


def test_each_backend_gets_its_own_name_for_the_method() -> None:
    assert backend_method("minmax", "onnxruntime", "int8") == "minmax"
    assert backend_method("minmax", "tensorrt", "int8") == "max"  # Model Optimizer's name
    assert backend_method("entropy", "tensorrt", "int8") == "entropy"
    # fp8 with max only is Model Optimizer's rule, applied (and recorded) by its calibrator
    assert backend_method("entropy", "tensorrt", "fp8") == "entropy"


def test_a_method_the_backend_lacks_is_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(SpecError, match="'percentile' is unknown to the tensorrt backend's "
                                        r"calibrator \(Model Optimizer\)") as err:
        backend_method("percentile", "tensorrt", "int8")
    assert "['entropy', 'minmax']" in err.value.fix
    from trt_ops.pipeline.steps import plan_targets
    from trt_ops.spec import parse_spec

    spec = parse_spec({"name": "m", "targets": ["h100"], "precisions": ["int8"],
                       "calibration": {"method": "percentile"},
                       "model": {"factory": "pkg.mod:build",
                                 "inputs": [{"name": "x", "shape": [1, 4]}]},
                       "data": {"calibration": "c.npz", "validation": "v.npz"}}, tmp_path)
    with pytest.raises(SpecError, match="unknown to the tensorrt backend"):
        plan_targets(spec)


def test_recipes_follow_the_graph(encoder_run, digits_run) -> None:
    import onnx

    from trt_ops.calibration.recipes import choose
    from trt_ops.store import open_store

    def graph(run):
        return onnx.load(str(open_store(run.store).fetch(run.export.artifact("onnx"))))

    encoder, cnn = graph(encoder_run), graph(digits_run)
    assert choose(encoder, "onnxruntime", "int8").name == "dynamic"
    assert choose(encoder, "onnxruntime", "int8", "static").name == "static-transformer"
    trt = choose(encoder, "tensorrt", "int8")
    assert trt.name == "static-transformer" and trt.settings["disable_mha_qdq"]
    assert choose(cnn, "onnxruntime", "int8").name == "static"
    assert choose(cnn, "tensorrt", "int8").name == "static"
    with pytest.raises(SpecError, match="dynamic recipe is onnxruntime's"):
        choose(cnn, "tensorrt", "int8", "dynamic")
