"""TensorRT 10.x/11.x switches and engine compatibility checks (no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_ops.engines import get_backend
from trt_ops.engines.tensorrt import (
    TensorRTBackend,
    check_engine_compatible,
    check_supported_version,
    needs_strongly_typed_flag,
    parse_version,
)
from trt_ops.errors import EngineError, IntegrityError
from trt_ops.hardware import GpuInfo, HostInfo

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "580.159.04")
H200 = GpuInfo("NVIDIA H200", "9.0", "580.159.04")
T4 = GpuInfo("Tesla T4", "7.5", "580.159.04")


def host(*gpus: GpuInfo) -> HostInfo:
    return HostInfo(hostname="worker-1", cpu_isa="x86_64-avx512", cpu_model="cpu", gpus=gpus)


def engine(version: str = "10.16.1.11", **builder: object) -> dict:
    return {"backend": "tensorrt", "tensorrt_version": version, "gpu_product": H100.product,
            "compute_capability": "9.0", "builder": {"hardware_compatibility": "none", **builder}}


def test_versions_parse() -> None:
    assert parse_version("10.16.1.11") == (10, 16, 1, 11)
    assert parse_version("11.0.0rc1") == (11, 0, 0)


def test_strongly_typed_flag_only_on_10x() -> None:
    assert needs_strongly_typed_flag("10.16.1.11")
    assert not needs_strongly_typed_flag("11.4.0.106")  # always strongly typed; the flag is ignored


def test_tensorrt_8_is_refused() -> None:
    check_supported_version("10.0.1")
    with pytest.raises(EngineError, match="TensorRT 8.6.1 is too old"):
        check_supported_version("8.6.1")


def test_same_gpu_and_version_runs() -> None:
    check_engine_compatible(engine(), host(H100), "10.16.1.11")


@pytest.mark.parametrize("meta, gpu, runtime, words", [
    (engine(), None, "10.16.1.11", "has none"),
    (engine(), H200, "10.16.1.11", "built for 'NVIDIA H100 80GB HBM3', this worker has 'NVIDIA H200'"),
    (engine(hardware_compatibility="same_compute_capability"), T4, "10.16.1.11", "compute capability 9.0"),
    (engine(hardware_compatibility="ampere_plus"), T4, "10.16.1.11", "Ampere and newer"),
    (engine(), H100, "10.16.2.1", "built with TensorRT 10.16.1.11, this worker has 10.16.2.1"),
    (engine(version_compatible=True), H100, "10.15.1.29", "cannot run on TensorRT 10.15.1.29"),
    (engine("11.4.0.106", version_compatible=True), H100, "12.0.0.1", "cannot run on TensorRT 12.0.0.1"),
])
def test_incompatible_engines_are_refused(meta: dict, gpu: GpuInfo | None, runtime: str, words: str) -> None:
    with pytest.raises(EngineError) as err:
        check_engine_compatible(meta, host(gpu) if gpu else host(), runtime)
    assert words in err.value.problem and err.value.fix


@pytest.mark.parametrize("meta, gpu, runtime", [
    (engine(hardware_compatibility="same_compute_capability"), H200, "10.16.1.11"),
    (engine(hardware_compatibility="ampere_plus"), H200, "10.16.1.11"),
    (engine(version_compatible=True), H100, "10.17.0.5"),
    (engine(version_compatible=True), H100, "11.4.0.106"),  # 10.x version-compatible plans run on 11.x
])
def test_compatibility_modes_let_engines_travel(meta: dict, gpu: GpuInfo, runtime: str) -> None:
    check_engine_compatible(meta, host(gpu), runtime)


def test_backend_without_tensorrt_says_how_to_get_it() -> None:
    try:
        import tensorrt
    except ImportError:
        tensorrt = None
    if hasattr(tensorrt, "Builder"):
        pytest.skip("TensorRT is installed here")
    reason = get_backend("tensorrt").unavailable_reason()
    assert reason and "trt-ops[tensorrt]" in reason


def test_load_checks_sha256_before_deserializing(tmp_path: Path) -> None:
    """A tampered plan is refused before TensorRT is even imported (it is executable code)."""
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not the engine that was built")
    with pytest.raises(IntegrityError, match="does not match the engine's recorded sha256"):
        TensorRTBackend().load(plan, {"sha256": "0" * 64, "tensorrt_version": "10.16.1.11"})
