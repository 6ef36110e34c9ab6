"""Accuracy-guided mixed precision on a model made to fail its int8 gate on purpose.

The trap CNN (:func:`tests.core.models.trap_cnn`) has two convolutions whose int8 weights lose
everything; the search must keep exactly those two float, and no fewer will do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.mixed import THRESHOLDS, float_convs, trap_folder
from trt_ops.errors import SpecError
from trt_ops.pipeline import run_pipeline
from trt_ops.spec import load_spec
from trt_ops.store import open_store


@pytest.fixture(scope="module")
def trap_run(tmp_path_factory: pytest.TempPathFactory):
    spec = load_spec(trap_folder(tmp_path_factory.mktemp("trap")))
    return spec, run_pipeline(spec)


def _calibrated(spec, run) -> Path:
    return open_store(spec.store).fetch(run.calibrations["int8/onnxruntime"].artifact("onnx"))


def _top1_and_cosine(model_path: Path | bytes, spec, run) -> tuple[bool, dict[str, float]]:
    """The int8 gate on the validation set, this model against the exported FP32 one."""
    import onnxruntime as ort

    from trt_ops.quality.gate import check_frame
    from trt_ops.quality.metrics import sample_frame

    with np.load(spec.data.validation) as z:
        images = z["image"]
    so = ort.SessionOptions()  # the Q/DQ model as written: no fusion re-quantizes a float layer
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(open_store(spec.store).fetch(run.export.artifact("onnx"))), so)
    eng = ort.InferenceSession(model_path if isinstance(model_path, bytes) else str(model_path),
                               so)
    r, e = (s.run(None, {"image": images})[0] for s in (ref, eng))
    return check_frame(sample_frame(r, e, None, "classification"), THRESHOLDS)


def test_plain_int8_fails_its_gate_on_purpose(tmp_path: Path) -> None:
    spec = load_spec(trap_folder(tmp_path, **{"calibration.mixed_precision.mode": "off"}))
    run = run_pipeline(spec)
    (attempt,) = run.attempts
    assert attempt.verdict == "FAILED"
    assert run.calibrations["int8/onnxruntime"].info["mixed_precision"] is None
    assert float_convs(_calibrated(spec, run)) == []


def test_mixed_int8_passes_with_exactly_the_two_trap_layers_float(trap_run) -> None:
    spec, run = trap_run
    (attempt,) = run.attempts
    assert (attempt.precision, attempt.verdict) == ("int8", "PASSED")
    mixed = run.calibrations["int8/onnxruntime"].info["mixed_precision"]
    assert mixed["plain"]["passed"] is False and mixed["passed"] is True
    kept = float_convs(_calibrated(spec, run))
    assert [f["name"] for f in mixed["float_layers"]] and \
        sorted(f["name"] for f in mixed["float_layers"]) == kept
    assert len(kept) == 2  # the trap CNN has two trap layers; each holds the 1000 weights
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(_calibrated(spec, run)))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.name in kept:
            assert np.abs(weights[node.input[1]]).max() == 1000
    # why they stayed float: they are the most sensitive layers by far
    others = [s for n, s in _sensitivities(run).items() if n not in kept]
    assert min(f["sensitivity"] for f in mixed["float_layers"]) > 100 * max(others)


def _sensitivities(run) -> dict[str, float]:
    store = open_store(run.store)
    layers = json.loads(store.fetch(run.calibrations["int8/onnxruntime"]
                                    .artifact("calibration_layers")).read_text())
    return {layer["name"]: layer["sensitivity"] for layer in layers}


def test_no_float_layer_can_go_back_to_int8(trap_run) -> None:
    """Minimal: putting any one float layer's weights back to int8 (per channel, as onnxruntime
    quantizes them) fails the gate on the validation set, while the model as built passes."""
    import onnx
    from onnx import numpy_helper

    spec, run = trap_run
    path = _calibrated(spec, run)
    assert _top1_and_cosine(path, spec, run)[0]
    for layer in float_convs(path):
        model = onnx.load(str(path))
        node = next(n for n in model.graph.node if n.name == layer)
        init = next(t for t in model.graph.initializer if t.name == node.input[1])
        w = numpy_helper.to_array(init)
        scale = np.abs(w).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1, 1) / 127
        init.CopyFrom(numpy_helper.from_array((np.round(w / scale) * scale).astype(np.float32),
                                              init.name))
        passed, observed = _top1_and_cosine(model.SerializeToString(), spec, run)
        assert not passed, f"{layer} back in int8 still passes: {observed}"


def test_manifest_records_calibration_and_the_per_layer_report(trap_run) -> None:
    spec, run = trap_run
    cal = run.calibrations["int8/onnxruntime"]
    info = cal.info
    assert (info["method"], info["batch"]) == ("minmax", 1)
    mixed = info["mixed_precision"]
    assert info["samples"] + mixed["holdout_samples"] == 128 and mixed["holdout_samples"] == 32
    assert mixed["thresholds"]["top1_agreement"] == THRESHOLDS["top1_agreement"]
    assert mixed["seconds"] > 0 and info["calibration_seconds"] > 0
    # one 8-bit rounding of the input alone passes this gate: the verdict blames no floor
    low, high = mixed["input_rounding"]["ranges"]["image"]
    assert low < 0 < high and mixed["input_rounding"]["passed"] is True
    assert "int8 grid" not in mixed["reason"]
    assert {f["name"] for f in mixed["float_layers"]} <= set(info["kept_fp32"])
    # a pass on 32 held-out samples is weak evidence: the verdict gives the exact binomial
    # bound (Clopper-Pearson, 95% one-sided) and, below the gate's 0.9, says to hold out more
    from scipy.stats import beta

    n = mixed["holdout_samples"]
    agreeing = round(mixed["metrics"]["top1_agreement"] * n)
    assert mixed["passed"] and agreeing < n
    low = beta.ppf(0.05, agreeing, n - agreeing + 1)
    assert mixed["top1_agreement_low"] == pytest.approx(low, abs=1e-4)
    assert low < THRESHOLDS["top1_agreement"]
    assert f"bound the top-1 agreement only to >= {low:.3f}" in mixed["reason"]
    assert "Hold out more samples" in mixed["reason"]
    store = open_store(spec.store)
    layers = json.loads(store.fetch(cal.artifact("calibration_layers")).read_text())
    assert len(layers) == mixed["quantized_layers"]
    for layer in layers:
        if layer["tensor"]:
            low, high = layer["range"]
            assert layer["scale"] == pytest.approx((max(high, 0) - min(low, 0)) / 255)
            assert 0 <= layer["clipped_fraction"] <= 1
        assert layer["sensitivity"] is not None
    page = store.fetch(cal.artifact("calibration_report")).read_text()
    assert all(layer["name"] in page for layer in layers) and "<img" in page
    assert store.fetch(cal.artifact("calibration_plot")).read_bytes()[:4] == b"\x89PNG"


def test_rerun_is_a_cache_hit_and_a_changed_budget_is_not(trap_run, tmp_path: Path) -> None:
    spec, run = trap_run
    again = run_pipeline(spec)
    assert "calibrate int8/onnxruntime" not in again.work_done
    assert again.calibrations["int8/onnxruntime"].key == run.calibrations["int8/onnxruntime"].key
    changed = spec.model_copy(update={"calibration": spec.calibration.model_copy(update={
        "mixed_precision": spec.calibration.mixed_precision.model_copy(
            update={"max_float_fraction": 0.4})})})
    third = run_pipeline(changed)
    assert "calibrate int8/onnxruntime" in third.work_done


def test_a_cap_too_small_hands_on_the_model_and_says_why(tmp_path: Path) -> None:
    spec = load_spec(trap_folder(tmp_path, **{"calibration.mixed_precision.max_float_fraction": 0.2}))
    run = run_pipeline(spec)
    mixed = run.calibrations["int8/onnxruntime"].info["mixed_precision"]
    assert mixed["passed"] is False and "cap" in mixed["reason"]
    # the verdict says how far the cap's model stays from the gate
    at_cap = max(mixed["tried"], key=lambda t: t["float"])
    assert at_cap["float"] == int(0.2 * mixed["quantized_layers"]) and not at_cap["passed"]
    assert str(at_cap["metrics"]) in mixed["reason"]
    assert run.attempts[0].verdict == "FAILED"


def test_a_gate_stricter_than_8_bit_inputs_allow_is_named_as_the_cause(tmp_path: Path) -> None:
    """A min cosine no 8-bit rounding of these inputs meets: the verdict says the gate asks
    more than int8 can give and how to proceed, instead of only naming the cap."""
    strict = {"top1_agreement": 0.9, "min_cosine": 0.999999}
    spec = load_spec(trap_folder(tmp_path, **{"thresholds.int8": strict}))
    run = run_pipeline(spec)
    mixed = run.calibrations["int8/onnxruntime"].info["mixed_precision"]
    floor = mixed["input_rounding"]
    assert floor["passed"] is False and floor["metrics"]["min_cosine"] < strict["min_cosine"]
    assert mixed["passed"] is False
    assert "only its inputs rounded to their int8 grid already fails it" in mixed["reason"]
    assert "Relax the int8 thresholds" in mixed["reason"]
    assert run.attempts[0].verdict == "FAILED"


def test_int8_grid_rounding_is_onnxruntimes_own() -> None:
    """to_int8_grid gives what onnxruntime's QuantizeLinear/DequantizeLinear pair computes."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    from trt_ops.calibration.mixed_precision import to_int8_grid

    low, high = -1.7, 3.1
    zero, scale = compute_scale_zp(np.array(low, np.float32), np.array(high, np.float32),
                                   np.array(0, np.uint8), np.array(255, np.uint8))
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(np.array(scale, np.float32), "s"),
         numpy_helper.from_array(np.array(zero, np.uint8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).uniform(-3, 5, 10_000).astype(np.float32)  # clipped both sides
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]) \
        .run(None, {"x": x})[0]
    np.testing.assert_array_equal(to_int8_grid(x, low, high), y)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mode", "sometimes", "on_fail"),
    ("max_float_fraction", 0, "greater than 0"),
    ("max_float_fraction", 1.5, "less than or equal to 1"),
    ("time_limit_s", -5, "greater than 0"),
    ("holdout", 1, "less than 1"),
    ("sensitivity_samples", 0, "greater than 0"),
    ("max_layers", 3, "max_layers"),
])
def test_bad_mixed_precision_settings_are_refused(tmp_path: Path, field: str, value: object,
                                                  message: str) -> None:
    path = trap_folder(tmp_path, **{f"calibration.mixed_precision.{field}": value})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "mixed_precision" in str(err.value) and message in str(err.value)
