"""Spec options to builder settings, shape profiles, precisions and calibrators (no TensorRT)."""

from __future__ import annotations

import pytest

from trt_ops.engines.tensorrt.backend import TensorRTBackend
from trt_ops.engines.tensorrt.settings import (
    BuilderSettings,
    check_input_shape,
    resolve_profile,
)
from trt_ops.errors import EngineError, PrecisionError, SpecError
from trt_ops.targets.catalog import Target


def gpu_target(name: str, product: str, cc: str | None) -> Target:
    return Target(name=name, backend="tensorrt", queue=f"gpu-{name}", pool=name,
                  gpu_product=product, compute_capability=cc)


H100 = gpu_target("h100", "NVIDIA H100 80GB HBM3", "9.0")
A100 = gpu_target("a100", "NVIDIA A100-SXM4-80GB", "8.0")
T4 = gpu_target("t4", "Tesla T4", "7.5")


def test_defaults_build_a_detailed_engine_with_the_timing_cache() -> None:
    s = BuilderSettings.from_options({})
    assert s.optimization_level == 3 and s.profiling_verbosity == "detailed" and s.timing_cache
    assert s.hardware_compatibility == "none" and not s.version_compatible


def test_every_option_from_the_spec() -> None:
    options = {"optimization_level": 5, "hardware_compatibility": "ampere_plus",
               "version_compatible": True, "exclude_lean_runtime": True, "workspace_mib": 2048,
               "profiling_verbosity": "layer_names_only", "timing_cache": False}
    assert BuilderSettings.from_options(options).to_dict() == options


@pytest.mark.parametrize("options, words", [
    ({"fp16": True}, "unknown tensorrt builder options ['fp16']"),
    ({"optimization_level": 7}, "optimization_level=7"),
    ({"hardware_compatibility": "hopper"}, "hardware_compatibility='hopper'"),
    ({"exclude_lean_runtime": True}, "without version_compatible"),
    ({"workspace_mib": 0}, "workspace_mib=0"),
    ({"version_compatible": "yes"}, "not a boolean"),
])
def test_bad_options_are_refused_with_a_fix(options: dict, words: str) -> None:
    with pytest.raises(SpecError) as err:
        BuilderSettings.from_options(options)
    assert words in err.value.problem and err.value.fix


def test_dynamic_batch_profile_is_resolved() -> None:
    profile = {"image": {"min": [1, 1, 8, 8], "opt": [32, 1, 8, 8], "max": [32, 1, 8, 8]}}
    resolved = resolve_profile({"image": [-1, 1, 8, 8], "scale": [1]}, profile)
    assert resolved == {"image": profile["image"]}  # the static input needs no profile


@pytest.mark.parametrize("profile, words", [
    ({}, "dynamic dims [-1, 1, 8, 8] but the spec gives no shape profile"),
    ({"img": {"min": [1, 1, 8, 8], "opt": [1, 1, 8, 8], "max": [1, 1, 8, 8]}}, "inputs ['img']"),
    ({"image": {"min": [1, 1, 8, 8], "max": [8, 1, 8, 8]}}, "lacks ['opt']"),
    ({"image": {"min": [8, 1, 8, 8], "opt": [4, 1, 8, 8], "max": [32, 1, 8, 8]}}, "not ordered"),
    ({"image": {"min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [1, 3, 8, 8]}}, "changes static dims [1]"),
    ({"image": {"min": [1, 8, 8], "opt": [1, 8, 8], "max": [1, 8, 8]}}, "has 3 dims"),
])
def test_bad_profiles_are_refused(profile: dict, words: str) -> None:
    with pytest.raises(SpecError) as err:
        resolve_profile({"image": [-1, 1, 8, 8]}, profile)
    assert words in err.value.problem


def test_feeds_outside_the_profile_are_refused() -> None:
    check_input_shape("image", (32, 1, 8, 8), [1, 1, 8, 8], [32, 1, 8, 8])
    with pytest.raises(EngineError, match=r"shape \[64, 1, 8, 8\], outside the engine's profile"):
        check_input_shape("image", (64, 1, 8, 8), [1, 1, 8, 8], [32, 1, 8, 8])


def test_fp8_needs_ada_or_hopper() -> None:
    backend = TensorRTBackend()
    backend.check_precision("fp8", H100)
    with pytest.raises(PrecisionError, match=r"fp8 needs compute capability >= 8.9; target 'a100'"):
        backend.check_precision("fp8", A100)
    with pytest.raises(PrecisionError, match="does not say its compute capability"):
        backend.check_precision("fp8", gpu_target("x", "Some GPU", None))


def test_bf16_needs_ampere() -> None:
    TensorRTBackend().check_precision("bf16", A100)
    with pytest.raises(PrecisionError, match="bf16 needs compute capability >= 8.0"):
        TensorRTBackend().check_precision("bf16", T4)


@pytest.mark.parametrize("precision, function", [
    ("int8", "modelopt:modelopt_quantize"), ("fp8", "modelopt:modelopt_quantize"),
    ("fp16", "modelopt:autocast"), ("bf16", "modelopt:autocast"), ("fp32", "common:passthrough"),
])
def test_calibrator_per_precision(precision: str, function: str) -> None:
    assert TensorRTBackend().calibrator(precision) == f"trt_ops.calibration.{function}"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(PrecisionError):
        TensorRTBackend().calibrator("int4")


def test_json_schema_for_the_pipeline_form() -> None:
    """The spec embeds BuilderSettings: its schema carries the enums, ranges and descriptions."""
    schema = BuilderSettings.model_json_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert (props["optimization_level"]["minimum"], props["optimization_level"]["maximum"]) == (0, 5)
    assert props["hardware_compatibility"]["enum"] == ["none", "ampere_plus",
                                                       "same_compute_capability"]
    assert props["profiling_verbosity"]["enum"] == ["detailed", "layer_names_only", "none"]
    assert props["workspace_mib"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert all(p["description"] for p in props.values())
    assert "10.9" in props["hardware_compatibility"]["description"]


def test_settings_are_immutable_and_strict() -> None:
    s = BuilderSettings.from_options({"optimization_level": 4})
    with pytest.raises(Exception, match="frozen"):
        s.optimization_level = 5  # type: ignore[misc]
    with pytest.raises(SpecError, match="optimization_level='4' is out of range"):
        BuilderSettings.from_options({"optimization_level": "4"})


def test_options_a_version_lacks_are_refused_before_building() -> None:
    s = BuilderSettings.from_options({"hardware_compatibility": "same_compute_capability"})
    s.check_supported_by("10.9.0.34")
    with pytest.raises(SpecError, match="needs TensorRT 10.9 or newer; this worker has 10.8.0"):
        s.check_supported_by("10.8.0.43")
