"""The tensorrt backend end to end, once per TensorRT version CI checks, on the TensorRT stand-in.

For each version of ``scripts/trt-versions.txt`` (the oldest supported, a recent 10.x, the
newest 11.x) the digits CNN's int8 Q/DQ ONNX goes through the real stages on a host that claims
an H100: build twice (profile, layer report; the second build starts from the timing cache the
first one stored), validate against the fp32 reference, benchmark with two streams, register in
MLflow, and ``mlflow.pyfunc.load_model(...).predict``. TensorRT itself is the stand-in
(``tests/tensorrt/standin``: NVIDIA's real names of that version, onnxruntime underneath), so
this proves that trt-ops drives each version's API correctly, not TensorRT's speed or numerics.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

import numpy as np
import pytest

from tests.tensorrt.conftest import THRESHOLDS, Calibrated, attempt
from tests.tensorrt.standin import use_standin, versions

pytestmark = pytest.mark.standin


@dataclasses.dataclass
class Run:
    version: str
    builds: list[Any]
    validation: Any
    benchmark: Any
    registered: Any
    predictions: np.ndarray
    picked: dict[str, Any]
    trt: Any  # the stand-in's state: what TensorRT was asked to do
    store: Any = None  # the run's own store


@pytest.fixture(scope="module", params=versions())
def run(request: pytest.FixtureRequest, trt_digits: Calibrated, mlflow_uri: str,
        tmp_path_factory: pytest.TempPathFactory) -> Any:
    import mlflow

    from trt_ops.registry.client import mlflow_scope
    from trt_ops.stages.benchmark import benchmark_engine
    from trt_ops.stages.build import build_engine
    from trt_ops.stages.register import register_engines
    from trt_ops.stages.validate import validate_engine
    from trt_ops.store import FileStore
    from trt_ops.store.manifest import Manifest

    version = request.param
    d = trt_digits
    # its own store (no timing cache of other tests) holding the export and calibration: a
    # manifest may only name objects of the store it is used with
    root = tmp_path_factory.mktemp("store")
    for stage in ("export", "calibrate"):
        shutil.copytree(d.store.root / stage, root / stage)
    store = FileStore(root)

    def moved(m: Manifest) -> Manifest:
        return Manifest.from_dict(json.loads(m.to_json().replace(d.store.uri, store.uri)))

    d = dataclasses.replace(d, store=store, export=moved(d.export), int8=moved(d.int8))
    name = "digits-trt-" + version.replace(".", "-")
    mlflow.MlflowClient(mlflow_uri, registry_uri=mlflow_uri).create_experiment(  # artifacts in this session's temp dir
        f"trt-ops/{name}", artifact_location=tmp_path_factory.mktemp("artifacts").as_uri())
    with use_standin(version) as trt:
        builds = [build_engine(d.int8, "h100", store, profile=d.spec.profile(), options=options)
                  for options in ({}, {"optimization_level": 4})]
        validation = validate_engine(builds[0], d.export, d.spec.data.validation, d.inputs,
                                     store, task="classification", thresholds=THRESHOLDS)
        bench = benchmark_engine(builds[0], d.export, d.inputs, store, batch_sizes=(1, 8),
                                 iterations=4, warmup=1, streams=2)
        registered = register_engines(name, d.export,
                                      [attempt("h100", "int8", builds[0], validation, bench)],
                                      store, calibrations=[d.int8], tracking_uri=mlflow_uri,
                                      pipeline_run_id=f"standin-{version}")
        images = np.load(d.folder / "validation.npz")["image"][:40].astype(np.float32)
        with mlflow_scope(mlflow_uri):
            model = mlflow.pyfunc.load_model(registered.info["model_uri"])
        output = d.export.info["output_names"][0]
        yield Run(version, builds, validation, bench, registered,
                  model.predict({"image": images})[output], model.get_raw_model().engine, trt, store)


def test_builds_strongly_typed_engines_with_the_contract(run: Run, trt_digits: Calibrated) -> None:
    from trt_ops.engines.contract import TensorRTEngine, engine_from_metadata
    from trt_ops.targets.catalog import get_target

    engine = engine_from_metadata(run.builds[0].info["metadata"])
    assert isinstance(engine, TensorRTEngine)
    assert engine.backend_version == run.version and engine.precision == "int8"
    assert engine.hardware.gpu_product == get_target("h100").gpu_product
    assert engine.hardware.compute_capability == "9.0"
    assert [t.name for t in engine.inputs] == ["image"] and engine.inputs[0].shape == [-1, 1, 8, 8]
    assert [t.name for t in engine.outputs] == trt_digits.export.info["output_names"]
    assert engine.profile["image"].max == trt_digits.spec.profile()["image"]["max"]
    assert engine.sha256 == run.builds[0].artifact("engine").sha256
    # the plan TensorRT was asked for: a strongly typed network (the flag on 10.x, always on 11.x)
    from tests.tensorrt.standin.standin_plan import read_plan
    from trt_ops.store import open_store

    plan = open_store(run.store.uri).fetch(run.builds[0].artifact("engine"))
    header, _ = read_plan(plan.read_bytes())
    assert header["strongly_typed"] and header["version"] == run.version
    assert header["hardware_compatibility"] == "NONE"
    assert header["profile"]["image"][2] == trt_digits.spec.profile()["image"]["max"]


def test_layer_report_shows_the_int8_layers(run: Run) -> None:
    summary = run.builds[0].info["metadata"]["layers"]
    assert {"inspector", "layer_report"} <= set(run.builds[0].artifacts)
    assert summary["layers_by_precision"]["int8"] >= 3  # the three Q/DQ convolutions
    assert summary["engine_layers"] < summary["onnx_nodes"] and summary["fused_layers"] > 0
    assert summary["io_tensors"][0] == "image"  # read from this major's inspector schema


def test_second_build_starts_from_the_stored_timing_cache(run: Run) -> None:
    first, second = (b.info["metadata"]["timing_cache"] for b in run.builds)
    assert first["enabled"] and not first["hit"] and first["saved"] and not first["save_error"]
    assert second["hit"] and second["loaded_bytes"] == first["saved"]["size"]
    assert f"/trt-{run.version}/" in second["key"]  # one cache per GPU product and version


def test_validate_and_benchmark_with_two_streams(run: Run) -> None:
    assert run.validation.status.value == "OK", run.validation.info["gate"]
    assert run.validation.metrics["top1_agreement"] >= THRESHOLDS["top1_agreement"]
    rows = run.benchmark.info["rows"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    assert all(r["engine"]["throughput_streams"] > 0 and r["reference"]["p50_ms"] > 0 for r in rows)
    assert run.benchmark.info["timing"]["latency"].startswith("host_to_host")
    # two streams ran on two execution contexts of their own
    per_context = [n for k, n in run.trt.counts.items() if k.startswith("executions on context")]
    assert len(per_context) >= 2


def test_registered_and_served_through_pyfunc(run: Run, trt_digits: Calibrated,
                                              mlflow_uri: str) -> None:
    import mlflow
    import onnxruntime as ort

    from trt_ops.store import open_store

    info = run.registered.info
    client = mlflow.MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
    version = client.get_model_version(info["model_name"], info["version"])
    assert version.tags["trt_ops.tensorrt_version"] == run.version
    # the engines' logged model belongs to the register run's experiment, not the default one
    experiment = client.get_run(info["run_id"]).info.experiment_id
    model_id = version.source.removeprefix("models:/")
    assert client.get_logged_model(model_id).experiment_id == experiment != "0"
    assert version.tags["trt_ops.runtimes"] == f"tensorrt {run.version}"
    # the loader picked the TensorRT engine on this (claimed) H100, not the portable ONNX
    assert run.picked is not None and run.picked["backend"] == "tensorrt"
    assert run.picked["backend_version"] == run.version
    onnx = open_store(trt_digits.store.uri).fetch(trt_digits.int8.artifact("onnx"))
    images = np.load(trt_digits.folder / "validation.npz")["image"][:40].astype(np.float32)
    expected = ort.InferenceSession(str(onnx)).run(None, {"image": images})[0]
    np.testing.assert_allclose(run.predictions, expected, rtol=1e-5, atol=1e-5)
    assert not run.trt.errors, run.trt.errors
