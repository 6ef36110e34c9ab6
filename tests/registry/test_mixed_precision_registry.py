"""The registry records what mixed precision kept float and why, and marks per class the
recommended engine (the fastest that passed), which the trt_engine flavor loads first."""

from __future__ import annotations

import pytest

from tests.mixed import trap_folder
from trt_ops.pipeline import run_pipeline
from trt_ops.spec import load_spec


@pytest.fixture(scope="module")
def trap_registered(tmp_path_factory, servers):
    spec = load_spec(trap_folder(
        tmp_path_factory.mktemp("trap-registry"), precisions=["int8", "fp32"],
        **{"registry.model_name": "trap-cnn", "registry.tracking_uri": servers.tracking_uri}))
    return spec, run_pipeline(spec)


def test_version_tags_name_the_float_layers_and_their_sensitivity(trap_registered, servers):
    from mlflow import MlflowClient

    _, run = trap_registered
    info = run.registered.info
    version = MlflowClient(servers.tracking_uri).get_model_version(info["model_name"],
                                                                   info["version"])
    mixed = run.calibrations["int8/onnxruntime"].info["mixed_precision"]
    tag = version.tags["trt_ops.float_layers.int8-onnxruntime"]
    assert tag.startswith(f"{len(mixed['float_layers'])} of {mixed['quantized_layers']} ")
    for layer in mixed["float_layers"]:
        assert f"{layer['name']} ({layer['sensitivity']:.3g})" in tag
    artifacts = MlflowClient(servers.tracking_uri).list_artifacts(
        version.run_id, "calibration/int8-onnxruntime")
    assert {a.path.rsplit("/", 1)[-1] for a in artifacts} >= {
        "calibration_report.html", "calibration_plot.png", "calibration_layers.json"}


def test_recommended_engine_is_the_fastest_that_passed_and_the_flavor_loads_it(
        trap_registered, servers, local_class):
    from mlflow import MlflowClient

    from mlflow_plugins import trt_engine
    from trt_ops.registry.client import mlflow_scope

    _, run = trap_registered
    passed = [a for a in run.attempts if a.verdict == "PASSED"]
    assert {a.precision for a in passed} == {"int8", "fp32"}
    fastest = min(passed, key=lambda a: a.benchmark.metrics["latency_p50_ms"])
    info = run.registered.info
    version = MlflowClient(servers.tracking_uri).get_model_version(info["model_name"],
                                                                   info["version"])
    assert version.tags[f"trt_ops.recommended.{local_class}"] == \
        f"{local_class}-{fastest.precision}"
    assert run.recommended == {local_class: f"{local_class}-{fastest.precision}"}
    with mlflow_scope(servers.tracking_uri, servers.tracking_uri):
        model = trt_engine.load_model(info["model_uri"])
    assert model.engine["name"] == f"{local_class}-{fastest.precision}"
    assert model.engine["recommended"] is True
