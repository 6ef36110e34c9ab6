"""Registering the example's engines on a real MLflow server whose artifacts live in S3 (moto)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from tests.servers import free_port


def _register(run: Any, servers: Any, name: str, store: Any = None, **kw: Any):
    from trt_ops.stages.register import register_engines
    from trt_ops.store import open_store

    return register_engines(
        name, run.export, [a.to_dict() for a in run.attempts], store or open_store(run.store),
        calibrations=list(run.calibrations.values()), tracking_uri=servers.tracking_uri,
        pipeline_run_id=run.run_id, **kw)


@pytest.fixture(scope="module")
def client(servers):
    from mlflow import MlflowClient

    return MlflowClient(servers.tracking_uri)


@pytest.fixture(scope="module")
def registered(digits_run, servers):
    return _register(digits_run, servers, "digits-cnn", promote=True)


def _versions(client, name: str) -> list:
    return list(client.search_model_versions(f"name = '{name}'"))


def test_version_records_lineage_metrics_and_aliases(registered, digits_run, client, local_class):
    info = registered.info
    assert not registered.cache_hit
    assert info["model_uri"] == f"models:/digits-cnn/{info['version']}"
    # every gate passed and the spec allows promotion
    assert info["aliases"] == ["candidate", "champion"]
    mv = client.get_model_version("digits-cnn", info["version"])
    tags = mv.tags
    assert tags["trt_ops.onnx.sha256"] == digits_run.export.artifact("onnx").sha256
    assert tags["trt_ops.calibration_data.sha256"] == \
        digits_run.calibrations["int8/onnxruntime"].inputs["calibration_data"]
    assert set(tags["trt_ops.precisions"].split(",")) == {"int8", "fp16"}
    assert tags["trt_ops.gpu_classes"] == local_class
    assert tags["trt_ops.onnxruntime_version"]
    assert tags["trt_ops.pipeline_run_id"] == digits_run.run_id
    assert tags["trt_ops.source.uri"].startswith("trt_ops.examples.digits:build_model + ")
    assert len(tags["trt_ops.source.version"]) == 64  # the weights file's sha256
    assert tags["trt_ops.fallbacks"] == "none"
    # the description renders as a Markdown table, one row per engine
    table = [l for l in mv.description.splitlines() if l.startswith(f"| {local_class}")]
    assert len(table) == 2 and all("PASSED" in row for row in table)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    for engine in (f"{local_class}-int8", f"{local_class}-fp16"):
        for metric in ("latency_p50_ms", "latency_p99_ms", "throughput", "speedup",
                       "accuracy_drop", "top1_agreement"):
            assert f"{engine}.{metric}" in run.data.metrics
    folder = f"validation/{local_class}-int8"
    artifacts = {a.path for a in client.list_artifacts(info["run_id"], folder)}
    assert artifacts == {f"{folder}/report.html", f"{folder}/error_histogram.png"}
    assert {a.path for a in client.list_artifacts(info["run_id"], "calibrated")} == {
        "calibrated/int8-onnxruntime.onnx", "calibrated/fp16-onnxruntime.onnx"}


def test_engines_are_in_s3_and_the_store(registered, digits_run, servers):
    from mlflow import MlflowClient

    from trt_ops.store import open_store

    # this version's logged model, in the registry's bucket (other tests register models too)
    version = MlflowClient(servers.tracking_uri).get_model_version(
        registered.info["model_name"], str(registered.info["version"]))
    model_id = version.source.removeprefix("models:/")
    s3 = servers.s3()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=servers.bucket, Prefix="mlflow/")["Contents"]]
    engine_keys = [k for k in keys if f"/models/{model_id}/artifacts/engines/" in k
                   and k.endswith("engine.onnx")]
    assert len(engine_keys) == 2
    store = open_store(digits_run.store)
    manifest = store.read_json(f"registry/digits-cnn/{registered.info['version']}/manifest.json")
    assert manifest["model_uri"] == registered.info["model_uri"]
    for engine in manifest["engines"]:  # content-addressed: the key names the bytes' sha256
        assert f"engines/sha256/{engine['sha256']}/" in engine["uri"]
        assert store.exists(f"engines/sha256/{engine['sha256']}/engine.onnx")


def test_load_candidate_and_predict(registered, digits_dir, servers, local_class):
    import mlflow.pyfunc
    import onnxruntime as ort

    mlflow.set_tracking_uri(servers.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/digits-cnn@candidate")
    images = np.load(digits_dir / "validation.npz")["image"][:50].astype(np.float32)
    logits = model.predict({"image": images})["logits"]
    assert logits.shape == (50, 10)
    meta = model.metadata.flavors["trt_engine"]
    engines = {e["name"]: e for e in meta["engines"]}
    assert set(engines) == {f"{local_class}-int8", f"{local_class}-fp16"}
    for e in engines.values():
        assert e["backend"] == "onnxruntime" and e["cpu_isa"] and len(e["sha256"]) == 64
        assert e["uri"] and e["profile"]["image"]["max"][0] == 32
    assert [i.name for i in model.metadata.signature.inputs.inputs] == ["image"]
    # the engine agrees with the FP32 ONNX it was built from
    ref = ort.InferenceSession(str(_portable_path(model))).run(None, {"image": images})[0]
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.98
    # a bare array works for a single-input model, and larger batches than the profile's max
    more = np.concatenate([images] * 2)
    assert model.predict(more)["logits"].shape == (100, 10)


def _portable_path(model):
    import mlflow_plugins.trt_engine as flavor

    engine_model = model.get_raw_model()
    assert isinstance(engine_model, flavor.EngineModel)
    assert engine_model.engine is not None  # an engine fits this CPU: no portable fallback
    return engine_model.model_dir / flavor._PORTABLE_ONNX_SUBPATH


def test_register_again_returns_the_same_version(registered, digits_run, servers, client):
    again = _register(digits_run, servers, "digits-cnn", promote=True)
    assert again.cache_hit and again.info["version"] == registered.info["version"]
    assert len(_versions(client, "digits-cnn")) == 1


def test_concurrent_registrations_make_one_version(digits_run, servers, client):
    results: list[Any] = []
    errors: list[Exception] = []

    def register() -> None:
        try:
            results.append(_register(digits_run, servers, "digits-race"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert {r.info["version"] for r in results} == {"1"}
    assert sorted(r.cache_hit for r in results) == [False, True]  # one made it, one found it
    assert [mv.version for mv in _versions(client, "digits-race")] == ["1"]


def test_corrupt_engine_in_s3_is_refused(digits_run, servers, client):
    import mlflow.pyfunc

    from trt_ops.errors import IntegrityError

    info = _register(digits_run, servers, "digits-corrupt").info
    mv = client.get_model_version("digits-corrupt", info["version"])
    model_id = mv.source.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location  # s3://bucket/...
    prefix = location.split(f"s3://{servers.bucket}/", 1)[1]
    s3 = servers.s3()
    mlmodel = s3.get_object(Bucket=servers.bucket, Key=f"{prefix}/MLmodel")["Body"].read().decode()
    import yaml

    first = yaml.safe_load(mlmodel)["flavors"]["trt_engine"]["engines"][0]
    key = f"{prefix}/{first['path']}"
    body = bytearray(s3.get_object(Bucket=servers.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=servers.bucket, Key=key, Body=bytes(body))

    mlflow.set_tracking_uri(servers.tracking_uri)
    with pytest.raises(IntegrityError) as err:
        mlflow.pyfunc.load_model("models:/digits-corrupt@candidate")
    text = str(err.value)
    assert f"engine {first['name']}" in text and first["sha256"] in text and "corrupt" in text
    assert "fix:" in text


def test_unreachable_mlflow_is_a_clear_error(digits_run, servers):
    from trt_ops.registry.client import RegistryError

    down = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(RegistryError) as err:
        _register(digits_run, type(servers)(down, servers.s3_endpoint, servers.bucket,
                                            servers.workdir), "digits-down")
    assert time.monotonic() - start < 30
    assert down in str(err.value) and "fix:" in str(err.value)


def test_unreachable_store_midway_leaves_nothing_registered(digits_run, servers, client):
    """The version is created, then writing to the trt-ops store fails: the version goes away."""
    from trt_ops.errors import StoreError
    from trt_ops.stages.register import register_engines
    from trt_ops.store import S3Store, open_store
    from trt_ops.store.manifest import Manifest

    # this worker already holds every artifact (verified) in its cache; only writes need S3.
    # The run's manifests, as a run on the S3 store would have written them (a manifest may
    # only name objects of the store it is used with)
    local = open_store(digits_run.store)
    for m in [digits_run.export, *digits_run.calibrations.values()] + [
            getattr(a, s) for a in digits_run.attempts for s in ("build", "validation")]:
        for art in Manifest.coerce(m).artifacts.values():
            local.fetch(art)
    remote = f"s3://{servers.bucket}/store"

    def moved(m: Any) -> Any:
        return json.loads(json.dumps(Manifest.coerce(m).to_dict()).replace(local.uri, remote))

    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError) as err:
        register_engines(
            "digits-s3down", Manifest.from_dict(moved(digits_run.export)),
            [{**a.to_dict(), "build": moved(a.build), "validation": moved(a.validation)}
             for a in digits_run.attempts], S3Store(remote, endpoint_url=down),
            calibrations=[Manifest.from_dict(moved(c)) for c in digits_run.calibrations.values()],
            tracking_uri=servers.tracking_uri, pipeline_run_id=digits_run.run_id)
    assert down in str(err.value) and "fix:" in str(err.value)
    assert _versions(client, "digits-s3down") == []
    runs = client.search_runs([client.get_experiment_by_name("trt-ops/digits-s3down").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "unreachable" in runs[0].data.tags["trt_ops.register_error"]


def test_no_passed_engine_registers_nothing(digits_run, servers, client):
    from trt_ops.errors import SpecError
    from trt_ops.stages.register import register_engines
    from trt_ops.store import open_store

    failed = [{**a.to_dict(), "verdict": "FAILED", "reason": "FAILED | top1_agreement 0.5 < 0.98"}
              for a in digits_run.attempts]
    with pytest.raises(SpecError) as err:
        register_engines("digits-none", digits_run.export, failed, open_store(digits_run.store),
                         tracking_uri=servers.tracking_uri)
    assert "top1_agreement 0.5" in str(err.value) and "nothing was registered" in str(err.value)
    assert client.search_registered_models("name = 'digits-none'") == []


def test_failed_attempts_are_recorded_and_block_champion(digits_run, servers, client):
    attempts = [a.to_dict() for a in digits_run.attempts]
    attempts.append({**attempts[0], "precision": "fp8", "verdict": "FAILED",
                     "reason": "FAILED | top1_agreement 0.91 < 0.97"})
    from trt_ops.stages.register import register_engines
    from trt_ops.store import open_store

    m = register_engines("digits-partial", digits_run.export, attempts,
                         open_store(digits_run.store), tracking_uri=servers.tracking_uri,
                         promote=True, pipeline_run_id=digits_run.run_id)
    assert m.info["aliases"] == ["candidate"]  # not every gate passed: no champion
    mv = client.get_model_version("digits-partial", m.info["version"])
    assert "top1_agreement 0.91" in mv.tags["trt_ops.failed"]
    assert mv.tags["trt_ops.all_gates_passed"] == "false"
    assert any("**FAILED**" in l and "fp8" in l for l in mv.description.splitlines())
    json.dumps(m.to_dict())  # the result is XCom-able


def test_pipeline_registers_when_the_spec_names_a_model(digits_run, digits_dir, servers, client,
                                                        tmp_path):
    import yaml

    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    doc = yaml.safe_load((digits_dir / "pipeline.yaml").read_text())
    doc["model"]["state_dict"] = str(digits_dir / doc["model"]["state_dict"])
    doc["data"] = {k: str(digits_dir / v) if k in ("calibration", "validation") else v
                   for k, v in doc["data"].items()}
    doc["store"] = digits_run.store  # the session's store: every stage is a cache hit
    doc["registry"] = {"model_name": "digits-pipeline", "tracking_uri": servers.tracking_uri}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(doc))
    summary = run_pipeline(load_spec(tmp_path / "pipeline.yaml"))
    assert summary.registered.info["model_uri"] == "models:/digits-pipeline/1"
    assert summary.to_dict()["registered"]["info"]["aliases"] == ["candidate"]  # promote: false
    assert summary.steps[-1]["step"] == "register"
    mv = client.get_model_version("digits-pipeline", "1")
    assert mv.tags["trt_ops.pipeline_run_id"] == summary.run_id


def test_artifact_store_down_after_the_run_was_created(digits_run, servers, client, monkeypatch):
    """MLflow's S3 refuses the engines' upload: the run is marked FAILED, no version exists."""
    from trt_ops.errors import TrtOpsError

    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrtOpsError) as err:
        _register(digits_run, servers, "digits-artifacts-down")
    assert "registering digits-artifacts-down failed" in str(err.value)
    assert "nothing was registered" in str(err.value)
    assert _versions(client, "digits-artifacts-down") == []
    experiment = client.get_experiment_by_name("trt-ops/digits-artifacts-down")
    assert [r.info.status for r in client.search_runs([experiment.experiment_id])] == ["FAILED"]
