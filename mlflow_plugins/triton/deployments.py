"""The ``triton`` deployments target: a registered ``trt_engine`` version becomes a Triton
Inference Server model repository, in a local folder or on S3.

    mlflow deployments create -t triton --name digits -m models:/digits-cnn@champion \\
        --config repository=s3://bucket/triton
    mlflow deployments get -t triton:s3://bucket/triton --name digits

Only engines whose gate passed are written, each checked against its sha256 first; deploying
the same version with the same settings again changes nothing. ``mlflow deployments help -t
triton`` explains the configuration; :func:`target_help` holds that text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlflow_plugins.triton.repository import TritonRepository
from trt_ops.errors import TrtOpsError

if TYPE_CHECKING:
    from mlflow_plugins.triton.config import ServingOptions
    from mlflow_plugins.triton.engines import ServedEngine
    from mlflow_plugins.triton.layout import Layout, TritonModel
    from mlflow_plugins.triton.source import RegisteredVersion
    from trt_ops.store import ArtifactStore

TARGET = "triton"
FLAVOR = "trt_engine"
REPOSITORY_ENV = "TRT_OPS_TRITON_REPOSITORY"
TRITON_URL_ENV = "TRITON_URL"
log = logging.getLogger("trt_ops")
F = TypeVar("F", bound=Callable[..., Any])


class DeploymentError(MlflowException, click.ClickException):  # type: ignore[misc]
    """A refused deployment request: an ``MlflowException`` for Python callers, and a
    ``ClickException`` so that the ``mlflow`` CLI prints problem and fix without a traceback."""

    def __init__(self, problem: str, fix: str = "", error_code: int = INVALID_PARAMETER_VALUE):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem, error_code=error_code)


class DeploymentConfig(BaseModel):
    """The ``--config`` keys of ``create`` and ``update``."""

    model_config = ConfigDict(extra="forbid")

    repository: str | None = Field(None, description="the repository root: a folder or "
                                   f"s3://bucket/prefix (or -t triton:<root>, or ${REPOSITORY_ENV})")
    targets: list[str] | None = Field(None, description="comma-separated catalog classes to "
                                      "serve (default: every class the version has engines for)")
    precision: str | None = Field(None, description="serve engines of this precision only "
                                  "(default: each class's fastest engine)")
    max_queue_delay_us: int = Field(100, ge=0, description="dynamic batching queue delay")
    instance_count: int = Field(1, ge=1, description="model instances per GPU (or CPU)")
    triton_url: str | None = Field(None, description="HTTP address of the Triton server that "
                                   f"serves the repository, for predict (or ${TRITON_URL_ENV})")

    @field_validator("targets", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) \
            else value

    def options(self) -> ServingOptions:
        from mlflow_plugins.triton.config import ServingOptions

        return ServingOptions(self.max_queue_delay_us, self.instance_count)


def _parse_config(raw: dict[str, Any] | None) -> DeploymentConfig:
    try:
        return DeploymentConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}"
                             for e in exc.errors())
        raise DeploymentError(f"invalid deployment config: {problems}",
                              f"use the keys {sorted(DeploymentConfig.model_fields)}, e.g. "
                              "--config repository=s3://bucket/triton") from None


def _user_errors(method: F) -> F:
    """trt-ops' domain errors (digests, gates, stores, registry) as :class:`DeploymentError`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except TrtOpsError as exc:
            raise DeploymentError(exc.problem, exc.fix) from exc
        except ValueError as exc:  # bad prediction input
            raise DeploymentError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _show_progress() -> None:
    """Log lines reach a terminal when nothing else (Airflow, pytest) configured logging."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class TritonDeploymentClient(BaseDeploymentClient):
    """Writes registered ``trt_engine`` versions as Triton model repositories.

    :param target_uri: ``triton``, or ``triton:<root>`` naming the repository root
        (``triton:s3://bucket/triton``, ``triton:/srv/triton``)
    :param open_store: opens the root URI as a trt-ops artifact store (default:
        :func:`trt_ops.store.open_store`; the Airflow operator passes its ``aws`` connection's)
    :param tracking_uri, registry_uri: the MLflow servers (default: MLflow's environment)
    """

    def __init__(self, target_uri: str = TARGET,
                 open_store: Callable[[str], ArtifactStore] | None = None,
                 tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(target_uri)
        self._open_store = open_store
        self._tracking_uri, self._registry_uri = tracking_uri, registry_uri
        _show_progress()

    # -- MLflow's deployment API ---------------------------------------------------------------

    @_user_errors
    def create_deployment(self, name: str, model_uri: str, flavor: str | None = None,
                          config: dict[str, Any] | None = None,
                          endpoint: str | None = None) -> dict[str, Any]:
        """Writes ``model_uri``'s passed engines into the repository as Triton model ``name``
        (see :func:`target_help`). Creating the same deployment again is a no-op."""
        return self._deploy(name, model_uri, flavor, config or {}, update=False)

    @_user_errors
    def update_deployment(self, name: str, model_uri: str | None = None,
                          flavor: str | None = None, config: dict[str, Any] | None = None,
                          endpoint: str | None = None) -> dict[str, Any]:
        """Serves another version (default: the deployment's model URI resolved again, so an
        alias that moved is followed) or other settings; old versions' files are removed."""
        return self._deploy(name, model_uri, flavor, config or {}, update=True)

    @_user_errors
    def delete_deployment(self, name: str, config: dict[str, Any] | None = None,
                          endpoint: str | None = None) -> None:
        """Removes the deployment's model folders; deleting a missing deployment is not an error."""
        repo = self._repository(_parse_config(config).repository)
        for record in repo.deployment(name):
            repo.remove_model(record["repository_name"], name)
            log.info("removed %s from %s", name, record["repositories"][record["repository_name"]])

    @_user_errors
    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for record in self._repository(None).records():
            by_name.setdefault(record["name"], []).append(record)
        return [_describe(records) for records in by_name.values()]

    @_user_errors
    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        return _describe(self._records(self._repository(None), name))

    @_user_errors
    def predict(self, deployment_name: str | None = None, inputs: Any = None,
                endpoint: str | None = None) -> PredictionsResponse:
        """Runs ``inputs`` on the Triton server serving the deployment (``triton_url`` in its
        config, or ``$TRITON_URL``); the result is ``{"predictions": {output: values}}``."""
        from mlflow_plugins.triton.predict import as_feeds, infer

        record = self._records(self._repository(None), deployment_name or "")[0]
        url = os.environ.get(TRITON_URL_ENV) or record["config"].get("triton_url")
        if not url:
            raise DeploymentError(
                f"no Triton server is configured for deployment {deployment_name}: trt-ops "
                f"wrote its model repository ({', '.join(record['repositories'].values())}), "
                "and serving it is a Triton server's job",
                f"start tritonserver --model-repository=<one of those> and give its HTTP "
                f"address: update the deployment with --config triton_url=http://host:8000, or "
                f"set {TRITON_URL_ENV}")
        outputs = infer(url, record["name"], record["version"],
                        as_feeds(inputs, record["inputs"]), [o["name"] for o in record["outputs"]],
                        max_batch=record.get("max_batch_size", 0))
        return PredictionsResponse({"predictions": {k: v.tolist() for k, v in outputs.items()}})

    # -- the work --------------------------------------------------------------------------------

    def _repository(self, configured: str | None) -> TritonRepository:
        from trt_ops.store import open_store

        suffix = self.target_uri.split(":", 1)[1] if ":" in self.target_uri else ""
        if configured and suffix and configured.rstrip("/") != suffix.rstrip("/"):
            raise DeploymentError(f"two repositories given: {suffix} (target) and {configured} "
                                  "(config)", "give the repository once")
        uri = configured or suffix or os.environ.get(REPOSITORY_ENV)
        if not uri:
            raise DeploymentError(
                "no Triton repository given",
                f"pass --config repository=s3://bucket/prefix (or a folder), use the target "
                f"triton:<repository>, or set {REPOSITORY_ENV}")
        return TritonRepository(uri, (self._open_store or open_store)(uri))

    def _records(self, repo: TritonRepository, name: str) -> list[dict[str, Any]]:
        records = repo.deployment(name)
        if not records:
            raise DeploymentError(f"there is no deployment {name!r} in {repo.uri}",
                                  f"list them with mlflow deployments list -t triton:{repo.uri}",
                                  error_code=RESOURCE_DOES_NOT_EXIST)
        return records

    def _deploy(self, name: str, model_uri: str | None, flavor: str | None,
                raw: dict[str, Any], update: bool) -> dict[str, Any]:
        from mlflow_plugins.triton import source
        from trt_ops.registry.client import mlflow_client

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name or ""):
            raise DeploymentError(f"deployment name {name!r} cannot be a Triton model name",
                                  "use letters, digits, '_', '.' and '-', e.g. digits-cnn")
        if flavor not in (None, FLAVOR):
            raise DeploymentError(f"flavor {flavor!r} cannot be deployed to Triton by trt-ops",
                                  f"leave --flavor out or pass {FLAVOR}")
        settings = _parse_config(raw)
        repo = self._repository(settings.repository)
        existing = repo.deployment(name)
        if update:
            previous = self._records(repo, name)[0]
            settings = _parse_config({**previous["config"], **raw})
            model_uri = model_uri or previous["requested_uri"]
        client = mlflow_client(self._tracking_uri, self._registry_uri)
        with tempfile.TemporaryDirectory(prefix="trt-ops-triton-") as tmp:
            version = source.load(client, model_uri or "", Path(tmp))
            layout, texts = _plan(name, version, settings)
            digest = _digest(version, layout, texts)
            if existing and {r["repository_name"] for r in existing} == set(texts) and all(
                    r.get("digest") == digest and repo.complete(
                        r["repository_name"], name, [f["file"] for f in r["engines"]]
                        + ["config.pbtxt"]) for r in existing):
                log.info("%s already serves %s with these settings: nothing to do", name,
                         version.model_uri)
                return _describe(existing)
            if existing and not update:
                raise DeploymentError(
                    f"deployment {name!r} already exists in {repo.uri} "
                    f"({existing[0]['model_uri']}, other engines or settings)",
                    f"update it (mlflow deployments update -t triton:{repo.uri} --name {name} "
                    f"-m {model_uri}) or delete it first")
            chosen = [e for m in layout.models for e in m.engines]
            files = source.fetch_engines(version, chosen, Path(tmp))  # verified: before writes
            common = _record(name, version, layout, settings, repo, digest, client)
            for model in layout.models:
                repo.write_model(
                    model.repository, name, version.version,
                    {model.filename(e): files[e.name] for e in model.engines},
                    texts[model.repository],
                    {**common, "repository_name": model.repository,
                     "engines": [_engine_record(model, e, version.version) for e in model.engines]})
            for record in existing:  # what the previous deployment had and this one has not
                kept = record["repository_name"] in texts
                repo.remove_model(record["repository_name"], name,
                                  keep_version=version.version if kept else None)
        for note in layout.notes:
            log.info("%s", note)
        for model in layout.models:
            log.info("%s version %s -> %s", name, version.version,
                     repo.repository_uri(model.repository))
        return _describe(repo.deployment(name))


def _plan(name: str, version: RegisteredVersion,
          settings: DeploymentConfig) -> tuple[Layout, dict[str, str]]:
    """The layout, and each Triton model's config.pbtxt text by repository."""
    from mlflow_plugins.triton import config, layout
    from trt_ops.targets.catalog import load_catalog

    chosen, left_out = layout.select(version.engines, version.failed, settings.targets,
                                     settings.precision, set(load_catalog()))
    plan = layout.plan(chosen, version.inputs, version.outputs, left_out)
    texts = {m.repository: config.to_text(config.model_config(
        name, int(version.version), m, m.shapes, settings.options())) for m in plan.models}
    return plan, texts


def _digest(version: RegisteredVersion, layout: Layout, texts: dict[str, str]) -> str:
    content = {m.repository: {"config": texts[m.repository],
                              "engines": {m.filename(e): e.sha256 for e in m.engines}}
               for m in layout.models}
    blob = json.dumps({"model_uri": version.model_uri, "models": content}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _engine_record(model: TritonModel, e: ServedEngine, version: str) -> dict[str, Any]:
    return {"name": e.name, "target": e.target, "backend": e.backend,
            "backend_version": e.backend_version, "precision": e.precision,
            "hardware": e.hardware, "compute_capability": e.compute_capability,
            "sha256": e.sha256, "file": f"{version}/{model.filename(e)}"}


def _record(name: str, version: RegisteredVersion, layout: Layout, settings: DeploymentConfig,
            repo: TritonRepository, digest: str, client: Any) -> dict[str, Any]:
    from trt_ops import __version__

    served = [e for m in layout.models for e in m.engines]
    needs = sorted({f"TensorRT {e.backend_version}" + (" (version-compatible plan: start "
                    "Triton with --backend-config=tensorrt,version-compatible=true)"
                    if e.version_compatible else "") for e in served if e.backend == "tensorrt"})
    return {
        "name": name, "flavor": FLAVOR, "digest": digest,
        "model_uri": version.model_uri, "requested_uri": version.requested_uri,
        "registered_model": version.name, "version": version.version,
        "run_id": version.run_id, "onnx_sha256": version.tags.get("trt_ops.onnx.sha256"),
        "repository": repo.uri,
        "repositories": {m.repository: repo.repository_uri(m.repository) for m in layout.models},
        "layout": list(layout.notes), "not_deployed": list(layout.not_deployed),
        "max_batch_size": min(m.shapes.max_batch_size for m in layout.models),
        "triton_needs": needs, "gates": version.gates(client, served),
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}
                   for t in version.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}
                    for t in version.outputs],
        "config": settings.model_dump(exclude_none=True, exclude={"repository"}),
        "trt_ops_version": __version__,
    }


def _describe(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One deployment as MLflow shows it: the records of its repositories merged."""
    first = records[0]
    keep = ("name", "flavor", "model_uri", "requested_uri", "version", "repository",
            "repositories", "layout", "not_deployed", "triton_needs", "gates", "config")
    return {**{k: first.get(k) for k in keep},
            "engines": [e for r in records for e in r["engines"]]}


def run_local(target: str, name: str, model_uri: str, flavor: str | None = None,
              config: dict[str, Any] | None = None) -> None:
    """Writes the repository into a local folder (``repository`` in the config, default
    ``./triton-repository``) and prints the command that serves it; Triton itself is not
    started."""
    config = {"repository": str(Path("triton-repository").resolve()), **(config or {})}
    described = TritonDeploymentClient(TARGET).create_deployment(name, model_uri, flavor, config)
    for repository, uri in described["repositories"].items():
        path = urllib.parse.urlparse(uri).path
        click.echo(f"{repository}: docker run --rm --gpus all -p 8000:8000 -v {path}:/models "
                   f"nvcr.io/nvidia/tritonserver:<release>-py3 tritonserver "
                   f"--model-repository=/models")


def target_help() -> str:
    keys = "\n".join(f"  {k:<20} {f.description}" for k, f in DeploymentConfig.model_fields.items())
    return f"""Deploys registered trt_engine versions (trt-ops) to Triton Inference Server model
repositories in a folder or on S3; Triton serves them from there.

Target URI: triton, or triton:<repository root> (triton:s3://bucket/triton, triton:/srv/triton).
list, get, delete and predict take the root from the target URI or ${REPOSITORY_ENV}.

Model URI: models:/<name>/<version> or models:/<name>@<alias>; the MLflow version number is the
Triton model version.

Config (--config key=value):
{keys}

What is written, under <root>/<repository>/<deployment name>/: config.pbtxt (Triton's ModelConfig:
inputs and outputs, max_batch_size and dims from the engines' shape profile, dynamic batching,
instance group, the version as version policy), <version>/ with the engine files, and
mlflow-meta.json (model URI, sha256 digests, gate verdicts). TensorRT engines use platform
tensorrt_plan with one plan per compute capability (cc_model_filenames) in the repository 'gpu';
when two GPU classes share a compute capability (H100 and H200: 9.0) each class gets its own
repository, <root>/<class>, for its node pool. onnxruntime engines get one repository per CPU
class. Only engines whose gate passed are deployed, after their sha256 is checked; deploying the
same version and settings again changes nothing.

S3: boto3's credentials; an S3-compatible endpoint from TRT_OPS_S3_ENDPOINT_URL or
AWS_ENDPOINT_URL.
"""
