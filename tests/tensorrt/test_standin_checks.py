"""What the tensorrt backend does when TensorRT answers no, on the TensorRT stand-in.

Each test names the defect it guards against: a TensorRT call whose null or ``False`` answer was
not checked, an enum member looked up on a version that lacks it, a timing cache whose save
failure failed a good build, one execution context shared by threads, and a flavor that refused
version-compatible engines and required an unpinned ``tensorrt``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.tensorrt.conftest import Calibrated, build_int8, load_engine, sample_images
from tests.tensorrt.standin import use_standin, versions
from trt_ops.errors import EngineError, SpecError

pytestmark = pytest.mark.standin
OLDEST, RECENT_10, NEWEST = versions()


def test_oldest_version_builds_and_refuses_what_it_lacks(trt_digits: Calibrated,
                                                         tmp_path: Path) -> None:
    """10.6 has no SAME_COMPUTE_CAPABILITY (from 10.9): building looked it up every time."""
    with use_standin(OLDEST) as trt:
        import tensorrt

        with pytest.raises(AttributeError, match="SAME_COMPUTE_CAPABILITY"):
            tensorrt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY  # noqa: B018
        assert build_int8(trt_digits, tmp_path / "default").engine.backend_version == OLDEST
        with pytest.raises(SpecError) as err:
            build_int8(trt_digits, tmp_path / "same-cc",
                       hardware_compatibility="same_compute_capability")
        assert "needs TensorRT 10.9 or newer; this worker has 10.6.0" in err.value.problem
        assert trt.counts["builds"] == 1  # refused before TensorRT was asked
    with use_standin(RECENT_10):
        result = build_int8(trt_digits, tmp_path / "recent",
                            hardware_compatibility="same_compute_capability")
        assert result.engine.builder.hardware_compatibility == "same_compute_capability"


def test_lean_runtime_that_does_not_load_is_an_error(trt_digits: Calibrated, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``Runtime.load_runtime`` answers None when the library cannot be loaded."""
    from tests.tensorrt.standin.standin_engine import LEAN_RUNTIME_MARK
    from trt_ops.engines.tensorrt.runner import LEAN_RUNTIME_ENV

    with use_standin(RECENT_10):
        result = build_int8(trt_digits, tmp_path, version_compatible=True,
                            exclude_lean_runtime=True)
    with use_standin(NEWEST):
        monkeypatch.delenv(LEAN_RUNTIME_ENV, raising=False)
        with pytest.raises(EngineError, match="without its lean runtime"):
            load_engine(result)
        monkeypatch.setenv(LEAN_RUNTIME_ENV, str(tmp_path / "libnvinfer_lean.so.10"))
        with pytest.raises(EngineError, match="could not load the lean runtime"):
            load_engine(result)
        (tmp_path / "libnvinfer_lean.so.10").write_text(f"{LEAN_RUNTIME_MARK} {RECENT_10}\n")
        with load_engine(result) as runner:  # a 10.x plan on 11.x, through 10.x's lean runtime
            out = runner.infer({"image": sample_images(trt_digits)})
            assert out[runner.output_names[0]].shape == (8, 10)


@pytest.mark.parametrize("call, words", [
    ("deserialize_cuda_engine", "could not deserialize"),
    ("create_execution_context", "could not create an execution context"),
    ("set_input_shape", "refused input shape [8, 1, 8, 8]"),
])
def test_tensorrt_refusals_are_errors_not_crashes(trt_digits: Calibrated, tmp_path: Path,
                                                  call: str, words: str) -> None:
    with use_standin(OLDEST) as trt:
        result = build_int8(trt_digits, tmp_path)
        trt.fail_next(call)
        with pytest.raises(EngineError) as err, load_engine(result) as runner:
            runner.infer({"image": sample_images(trt_digits)})
        assert words in err.value.problem and err.value.fix


def test_a_plan_that_does_not_deserialize_after_the_build_fails_the_build(
        trt_digits: Calibrated, tmp_path: Path) -> None:
    with use_standin(OLDEST) as trt:
        trt.fail_next("deserialize_cuda_engine")
        with pytest.raises(EngineError, match="could not deserialize the plan it has just built"):
            build_int8(trt_digits, tmp_path)


class FailingCacheStore:
    """A FileStore whose timing-cache keys cannot be written (or also not read)."""

    def __new__(cls, root: Path, reads_fail: bool = False) -> Any:
        from trt_ops.errors import StoreError
        from trt_ops.store import FileStore

        class Store(FileStore):
            def put_bytes(self, key: str, data: bytes) -> Any:
                if key.startswith("timing-caches/"):
                    raise StoreError(f"write of {key} refused (test)")
                return super().put_bytes(key, data)

            def read_json(self, key: str) -> Any:
                if reads_fail and key.startswith("timing-caches/"):
                    raise StoreError(f"read of {key} refused (test)")
                return super().read_json(key)

        return Store(root)


@pytest.mark.parametrize("reads_fail", [False, True])
def test_timing_cache_failures_do_not_fail_a_good_build(trt_digits: Calibrated, tmp_path: Path,
                                                        reads_fail: bool) -> None:
    store = FailingCacheStore(tmp_path / "store", reads_fail=reads_fail)
    with use_standin(OLDEST):
        result = build_int8(trt_digits, tmp_path / "out", store=store)
    cache = result.engine.timing_cache
    assert result.engine_path.is_file() and cache.enabled and not cache.hit
    assert cache.saved is None and "refused (test)" in (cache.save_error or "")


def test_threads_never_share_an_execution_context(trt_digits: Calibrated, tmp_path: Path) -> None:
    """pyfunc serving calls predict from many threads; each call needs a context of its own."""
    batches = [sample_images(trt_digits, 40)[i:i + 5] for i in range(0, 40, 5)]
    with use_standin(OLDEST) as trt:
        result = build_int8(trt_digits, tmp_path)
        with load_engine(result) as runner:
            name = runner.output_names[0]
            expected = [runner.infer({"image": b})[name] for b in batches]
            got: dict[int, np.ndarray] = {}
            start = threading.Barrier(len(batches))

            def serve(i: int) -> None:
                start.wait()
                for _ in range(5):
                    got[i] = runner.infer({"image": batches[i]})[name]

            threads = [threading.Thread(target=serve, args=(i,)) for i in range(len(batches))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert runner.contexts >= 2
        assert not trt.errors, trt.errors
        for i, out in enumerate(expected):
            np.testing.assert_array_equal(got[i], out)


def test_the_standin_catches_a_context_shared_by_two_threads(trt_digits: Calibrated,
                                                             tmp_path: Path) -> None:
    """The control for the test above: the stand-in refuses a run staged from another thread."""
    with use_standin(OLDEST) as trt:
        import tensorrt

        result = build_int8(trt_digits, tmp_path)
        engine = tensorrt.Runtime(tensorrt.Logger()).deserialize_cuda_engine(
            result.engine_path.read_bytes())
        context = engine.create_execution_context()
        buffers = {n: np.zeros(1024, np.uint8) for n in ("image", result.engine.outputs[0].name)}
        context.set_input_shape("image", (1, 1, 8, 8))
        other = threading.Thread(target=lambda: [context.set_tensor_address(n, b.ctypes.data)
                                                 for n, b in buffers.items()])
        other.start()
        other.join()
        assert context.execute_async_v3(0) is False
        assert "used by two threads" in trt.errors[-1]


def test_flavor_runs_version_compatible_engines_and_pins_tensorrt(trt_digits: Calibrated,
                                                                   tmp_path: Path) -> None:
    """A later TensorRT may run a version-compatible engine; MLmodel pins what runs the engines."""
    import mlflow.pyfunc

    import mlflow_plugins.trt_engine as flavor

    with use_standin(RECENT_10):
        portable = build_int8(trt_digits, tmp_path / "portable", version_compatible=True)
        pinned = build_int8(trt_digits, tmp_path / "pinned")
    onnx = trt_digits.store.fetch(trt_digits.export.artifact("onnx"))

    def save(name: str, *results: Any) -> Path:
        engines = [{"name": r.engine_path.parent.name, "path": str(r.engine_path),
                    "metadata": r.engine.model_dump(mode="json"), "target": "h100"}
                   for r in results]
        flavor.save_model(engines, str(tmp_path / name), onnx, allow_portable_fallback=False)
        return tmp_path / name

    both, only_pinned = save("both", portable, pinned), save("only-pinned", pinned)
    assert tensorrt_requirement(both) == SpecifierSet(f">={RECENT_10},<12")
    assert tensorrt_requirement(only_pinned) == SpecifierSet(f"=={RECENT_10}")
    with use_standin(NEWEST):
        model = mlflow.pyfunc.load_model(str(both)).get_raw_model()
        assert model.engine["name"] == "portable"  # a 10.x version-compatible plan on 11.x
        out = model.predict({"image": sample_images(trt_digits)})
        assert next(iter(out.values())).shape == (8, 10)
        with pytest.raises(EngineError) as err:
            flavor.load_model(str(only_pinned))
        assert f"built with TensorRT {RECENT_10}, this worker has {NEWEST}" in err.value.problem


def tensorrt_requirement(model: Path) -> SpecifierSet:
    lines = (model / "requirements.txt").read_text().splitlines()
    [found] = [Requirement(line) for line in lines if Requirement(line).name == "tensorrt"]
    return found.specifier


def test_benchmark_reference_returns_host_arrays_like_the_engine(trt_digits: Calibrated) -> None:
    """The PyTorch reference is timed host to host, as engines are: numpy in, numpy out."""
    import onnxruntime as ort

    from trt_ops.models.reference import load_reference
    from trt_ops.stages.benchmark import torch_reference

    run = torch_reference(load_reference(trt_digits.export, trt_digits.store), ["image"])
    out = run({"image": sample_images(trt_digits)})
    assert len(out) == 1 and isinstance(out[0], np.ndarray)
    onnx = trt_digits.store.fetch(trt_digits.export.artifact("onnx"))
    expected = ort.InferenceSession(str(onnx)).run(None, {"image": sample_images(trt_digits)})[0]
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
