"""MLflow runs and model versions of registered engines: created, found by digest, rolled back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from trt_ops.registry.client import RegistryError, call, mlflow_scope
from trt_ops.registry.lineage import DIGEST_TAG, ENGINE_METRICS, engine_name, recommended

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("trt_ops")

MODEL_ARTIFACT = "engines"  # the logged model's name in its run

from pathlib import Path

from trt_ops.store.manifest import Manifest


def versions_with_digest(client: MlflowClient, model_name: str, digest: str) -> list[str]:
    """Versions of ``model_name`` tagged with ``digest``, oldest first."""
    found = call(client, f"search for versions of {model_name}", client.search_model_versions,
                 f"name = '{model_name}' and tags.`{DIGEST_TAG}` = '{digest}'")
    return sorted((mv.version for mv in found), key=int)


def local_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite tracking store beside its database file.

    Without an artifact location MLflow puts them in ``./mlruns`` of whatever folder the process
    runs in; for a local registry the database's folder is where users look for them.
    """
    prefix = "sqlite:///"  # then an absolute path (a fourth slash) or one relative to the cwd
    database = tracking_uri[len(prefix):] if tracking_uri.startswith(prefix) else ""
    if not database or database == ":memory:":
        return None
    return (Path(database).resolve().parent / "mlartifacts").as_uri()


def start_run(client: MlflowClient, model_name: str, tags: dict[str, str],
               pipeline_run_id: str) -> str:
    experiment = f"trt-ops/{model_name}"
    found = call(client, f"lookup of experiment {experiment}", client.get_experiment_by_name,
                 experiment)
    if found is None:
        try:
            exp_id = call(client, f"creation of experiment {experiment}",
                          client.create_experiment, experiment,
                          artifact_location=local_artifact_location(client.tracking_uri))
        except RegistryError:  # created by a concurrent task in the meantime
            again = call(client, f"lookup of experiment {experiment}",
                         client.get_experiment_by_name, experiment)
            if again is None:
                raise
            exp_id = again.experiment_id
    else:
        exp_id = found.experiment_id
    run = call(client, "creation of a run", client.create_run, exp_id,
               run_name=f"register {pipeline_run_id or model_name}", tags=tags)
    return run.info.run_id


def log_run(client: MlflowClient, run_id: str, passed: list[dict], files: dict[str, Path]) -> None:
    from mlflow.entities import Metric

    metrics = []
    for a in passed:
        for stage, keys in ENGINE_METRICS.items():
            values = (a.get(stage) or {}).get("metrics", {})
            metrics += [Metric(f"{engine_name(a)}.{k}", float(values[k]), 0, 0) for k in keys
                        if isinstance(values.get(k), (int, float))]
    call(client, "logging metrics", client.log_batch, run_id, metrics=metrics)
    for key, path in files.items():
        if not key.startswith(("engine/", "onnx/")):
            call(client, f"upload of {key}", client.log_artifact, run_id, str(path),
                 str(Path(key).parent) if "/" in key else None)


def log_engines(client: MlflowClient, run_id: str, passed: list[dict], builds: list[Manifest],
                 files: dict[str, Path]) -> str:
    from mlflow_plugins import trt_engine

    chosen = set(recommended(passed).values())
    engines = [{"name": engine_name(a), "path": str(engine_file(files, a)),
                "metadata": b.info["metadata"], "uri": b.artifact("engine").uri,
                "target": a["target"], "recommended": engine_name(a) in chosen}
               for a, b in zip(passed, builds)]
    experiment_id = call(client, "lookup of the run", client.get_run, run_id).info.experiment_id
    with mlflow_scope(client.tracking_uri, client._registry_uri, experiment_id=experiment_id):
        info = call(client, "upload of the engines", trt_engine.log_model, engines,
                    files["onnx/model.onnx"], name=MODEL_ARTIFACT, run_id=run_id)
    return info.model_id


def ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            model_name, description="Inference engines built and validated by trt-ops.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            call(client, f"creation of registered model {model_name}",
                 client.get_registered_model, model_name)


def rollback(client: MlflowClient, model_name: str, version: str | None, run_id: str | None,
              why: str) -> None:
    """Best effort: remove the half-made version and mark the run FAILED, saying why."""
    if version is not None:
        try:
            client.delete_model_version(model_name, version)
        except Exception as exc:  # noqa: BLE001 - best effort: the server may be what failed
            log.error("register: could not delete %s version %s: %s", model_name, version, exc)
    if run_id is not None:
        try:
            client.set_tag(run_id, "trt_ops.register_error", why[:5000])
            client.set_terminated(run_id, "FAILED")
        except Exception as exc:  # noqa: BLE001 - best effort, as above
            log.error("register: could not mark run %s FAILED: %s", run_id, exc)


def version_manifest(client: MlflowClient, model_name: str, version: str, digest: str,
            cache_hit: bool) -> Manifest:
    mv = call(client, f"lookup of {model_name} version {version}", client.get_model_version,
              model_name, version)
    return Manifest(stage="register", key=digest, cache_hit=cache_hit, info={
        "model_name": model_name, "version": str(version),
        "model_uri": f"models:/{model_name}/{version}", "aliases": sorted(mv.aliases or []),
        "run_id": mv.run_id, "digest": digest})






def engine_file(files: dict[str, Path], attempt: dict[str, Any]) -> Path:
    return next(p for k, p in files.items() if k.startswith(f"engine/{engine_name(attempt)}/"))
