"""End to end on a GPU worker with TensorRT: the digits example built, validated and benchmarked.

Runs only where TensorRT imports and a CUDA GPU of the target catalog is present; elsewhere the
module is skipped with the reason. CI runs the same path on the TensorRT stand-in
(test_standin_end_to_end.py); this module is the check on real TensorRT and a real GPU, and it
has not run yet. Run it with:

    .venv/bin/pytest -m gpu tests/tensorrt/test_gpu_end_to_end.py -v
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trt_ops.engines import get_backend

pytestmark = pytest.mark.gpu

_REASON = get_backend("tensorrt").unavailable_reason()
if _REASON:
    pytest.skip(f"needs a GPU worker with TensorRT: {_REASON}", allow_module_level=True)


@pytest.fixture(scope="module")
def gpu_target() -> str:
    from trt_ops.targets.catalog import load_catalog
    from trt_ops.targets.host import host_info

    product = host_info().gpus[0].product
    for target in load_catalog().values():
        if target.backend == "tensorrt" and target.gpu_product == product:
            return target.name
    pytest.skip(f"no tensorrt class in the target catalog has this GPU ({product!r}); add one "
                "(TRT_OPS_TARGETS) to run this test")


@pytest.fixture(scope="module")
def run(digits_dir: Path, gpu_target: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One pipeline run of the example on this GPU: int8 and fp16, benchmark on 2 streams."""
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    spec = load_spec(digits_dir / "pipeline.yaml")
    spec = dataclasses.replace(spec, targets=(gpu_target,), precisions=("int8", "fp16"),
                               store=str(tmp_path_factory.mktemp("gpu-store")),
                               benchmark=dataclasses.replace(spec.benchmark, streams=2))
    return run_pipeline(spec)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_engine_passes_its_gate_and_is_benchmarked(run, precision: str) -> None:  # type: ignore[no-untyped-def]
    attempt = next(a for a in run.attempts if a.precision == precision)
    assert attempt.verdict == "PASSED", attempt.reason
    from trt_ops.engines.contract import TensorRTEngine, engine_from_metadata

    meta = engine_from_metadata(attempt.build.info["metadata"])
    assert isinstance(meta, TensorRTEngine) and meta.strongly_typed
    for fact in ("gpu_product", "compute_capability", "sm_count", "driver_version", "cuda_version"):
        assert getattr(meta.hardware, fact), fact
    assert meta.backend_version and meta.build_seconds > 0
    assert "layer_report" in attempt.build.artifacts and "inspector" in attempt.build.artifacts
    summary = meta.layers or {}
    assert summary["engine_layers"] < summary["onnx_nodes"]  # the builder fused the graph
    if precision == "int8":
        assert summary["layers_by_precision"].get("int8", 0) > 0
    rows = attempt.benchmark.info["rows"]
    assert all(r["engine"]["throughput_streams"] > 0 for r in rows)  # the multi-stream mode ran


def test_timing_cache_makes_the_second_build_faster(run, gpu_target: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two builds of the int8 ONNX into a fresh store: the second starts from the first's tactics."""
    from trt_ops.engines.base import BuildRequest
    from trt_ops.store import FileStore, open_store
    from trt_ops.targets.catalog import get_target

    onnx = open_store(run.store).fetch(run.calibrations["int8/tensorrt"].artifact("onnx"))
    store = FileStore(tmp_path / "store")
    backend = get_backend("tensorrt")
    profile = {"image": {"min": [1, 1, 8, 8], "opt": [32, 1, 8, 8], "max": [32, 1, 8, 8]}}
    builds = []
    for i in range(2):
        request = BuildRequest(onnx_path=onnx, out_dir=tmp_path / f"build{i}", precision="int8",
                               target=get_target(gpu_target), profile=profile,
                               options={"optimization_level": 5}, store=store)
        builds.append(backend.build(request).engine)
    first, second = builds
    assert not first.timing_cache.hit and second.timing_cache.hit
    assert second.build_seconds < first.build_seconds, (first.build_seconds, second.build_seconds)
    with backend.load(tmp_path / "build1" / backend.engine_filename, second) as runner:
        import numpy as np

        out = runner.infer({"image": np.zeros((4, 1, 8, 8), np.float32)})
    assert out[runner.output_names[0]].shape == (4, 10)
