"""TensorRT 10.x/11.x switches and engine compatibility checks (no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trt_ops.engines import get_backend
from trt_ops.engines.contract import (
    GpuHardware,
    ShapeRange,
    TensorRTEngine,
    TensorSpec,
    TimingCacheRecord,
)
from trt_ops.engines.tensorrt.backend import TensorRTBackend
from trt_ops.engines.tensorrt.settings import (
    MIN_VERSION,
    BuilderSettings,
    check_engine_compatible,
    check_supported_version,
    needs_strongly_typed_flag,
    parse_version,
    version_requirement,
)
from trt_ops.errors import EngineError, IntegrityError
from trt_ops.targets.host import GpuInfo, HostInfo

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "580.159.04")
H200 = GpuInfo("NVIDIA H200", "9.0", "580.159.04")
T4 = GpuInfo("Tesla T4", "7.5", "580.159.04")


def host(*gpus: GpuInfo) -> HostInfo:
    return HostInfo(hostname="worker-1", cpu_isa="x86_64-avx512", cpu_model="cpu", gpus=gpus)


def engine(version: str = "10.16.1.11", **builder: object) -> TensorRTEngine:
    """The contract of an int8 digits engine built on an H100 (no TensorRT needed)."""
    return TensorRTEngine(
        backend_version=version, precision="int8", target="h100",
        hardware=GpuHardware(gpu_product=H100.product, compute_capability="9.0"),
        inputs=[TensorSpec(name="image", dtype="float32", shape=[-1, 1, 8, 8])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[-1, 10])],
        profile={"image": ShapeRange(min=[1, 1, 8, 8], opt=[32, 1, 8, 8], max=[32, 1, 8, 8])},
        sha256="0" * 64, size=1, build_seconds=0.0,
        builder=BuilderSettings.from_options(dict(builder)),
        timing_cache=TimingCacheRecord(enabled=False))


def test_versions_parse() -> None:
    assert parse_version("10.16.1.11") == (10, 16, 1, 11)
    assert parse_version("11.0.0rc1") == (11, 0, 0)


def test_strongly_typed_flag_only_on_10x() -> None:
    assert needs_strongly_typed_flag("10.16.1.11")
    assert not needs_strongly_typed_flag("11.4.0.106")  # always strongly typed; the flag is ignored


def test_versions_older_than_10_6_are_refused() -> None:
    check_supported_version("10.6.0")
    check_supported_version("11.4.0.106")
    for old in ("8.6.1", "10.5.0"):
        with pytest.raises(EngineError, match=f"TensorRT {old} is too old") as err:
            check_supported_version(old)
        assert "tensorrt>=10.6" in err.value.fix


def test_the_oldest_supported_version_is_one_choice_everywhere() -> None:
    """pyproject, the backend, the README and the versions CI checks name the same oldest."""
    import tomllib

    from tests.tensorrt.standin.real_bindings import REPO, versions

    oldest = ".".join(map(str, MIN_VERSION))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert f"tensorrt>={oldest}" in pyproject["project"]["optional-dependencies"]["tensorrt"]
    assert versions()[0].startswith(oldest + ".")
    assert f"TensorRT {oldest}" in (REPO / "README.md").read_text()
    assert f"TensorRT {oldest}" in (REPO / "trt_ops/engines/tensorrt/backend.py").read_text()


def test_pip_requirement_of_an_engine() -> None:
    assert version_requirement("10.16.1.11", False) == "tensorrt==10.16.1.11"
    assert version_requirement("10.16.1.11", True) == "tensorrt>=10.16.1.11,<12"
    assert version_requirement("11.4.0.106", True) == "tensorrt>=11.4.0.106,<12"


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
        TensorRTBackend().load(plan, engine())


def test_the_build_gpu_is_found_by_uuid_not_by_cuda_index() -> None:
    """With CUDA_VISIBLE_DEVICES=1, CUDA's device 0 is nvidia-smi's second GPU."""
    from trt_ops.engines.tensorrt.device import visible_gpu

    smi = (GpuInfo("NVIDIA H100 80GB HBM3", "9.0", uuid="GPU-aaaaaaaa-0000"),
           GpuInfo("NVIDIA H200", "9.0", uuid="GPU-bbbbbbbb-1111"))
    assert visible_gpu("bbbbbbbb-1111", smi) is smi[1]  # torch reports the UUID without "GPU-"
    assert visible_gpu("GPU-aaaaaaaa-0000", smi) is smi[0]
    assert visible_gpu("cccccccc-2222", smi) is None and visible_gpu("", smi) is None
