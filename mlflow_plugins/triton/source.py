"""The registered version a deployment serves: its MLmodel, its engines (downloaded and checked
against their sha256 before anything is written), and the gate verdicts trt-ops recorded."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_plugins.triton.engines import ServedEngine, Tensor, read_flavor
from trt_ops.errors import IntegrityError, SpecError
from trt_ops.registry.client import call

if TYPE_CHECKING:
    from mlflow import MlflowClient

FLAVOR = "trt_engine"
GATES_TAG, FAILED_TAG = "trt_ops.all_gates_passed", "trt_ops.failed"
GATE_METRICS = ("accuracy_drop", "top1_agreement", "max_abs_error", "min_cosine",
                "latency_p50_ms", "latency_p99_ms", "throughput")


@dataclasses.dataclass
class RegisteredVersion:
    name: str
    version: str
    requested_uri: str           # as the user gave it, e.g. models:/digits-cnn@champion
    run_id: str | None
    tags: dict[str, str]
    artifact_uri: str            # where MLflow stores the model's files
    engines: list[ServedEngine]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    failed: dict[str, str]       # target/precision -> why its gate failed

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def gates(self, client: MlflowClient, engines: list[ServedEngine]) -> dict[str, Any]:
        """The gate verdicts and the served engines' gate and latency metrics, for the record."""
        metrics: dict[str, Any] = {}
        if self.run_id:
            run = call(client, f"lookup of run {self.run_id}", client.get_run, self.run_id)
            for e in engines:
                metrics[e.name] = {k: run.data.metrics[f"{e.name}.{k}"] for k in GATE_METRICS
                                   if f"{e.name}.{k}" in run.data.metrics}
        return {"all_gates_passed": self.tags.get(GATES_TAG), "failed": self.tags.get(FAILED_TAG),
                "metrics": metrics}


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3`` -> (name, "3", None); ``models:/name@champion`` -> (name, None, alias)."""
    parsed = urllib.parse.urlparse(uri or "")
    path = parsed.path.strip("/")
    match = re.fullmatch(r"([^/@]+)(?:/(\d+)|@([\w.-]+))", path)
    if parsed.scheme != "models" or parsed.netloc or match is None:
        raise SpecError(f"{uri!r} is not a registered model version",
                        "Triton serves registered versions (their number becomes the Triton "
                        "model version): pass -m models:/<name>/<version> or "
                        "models:/<name>@<alias>")
    return match.group(1), match.group(2), match.group(3)


def gate_verdicts(name: str, version: str, tags: dict[str, str]) -> dict[str, str]:
    """``target/precision`` -> reason for every attempt whose gate failed, from the tags the
    register stage writes; a version without them was not gated by trt-ops and is refused."""
    if GATES_TAG not in tags:
        raise SpecError(f"{name} version {version} carries no gate verdicts (tag {GATES_TAG}): "
                        "nothing shows that its engines passed validation",
                        "register the engines with trt-ops (the register stage or task) and "
                        "deploy that version")
    text = tags.get(FAILED_TAG, "none")
    if text in ("", "none"):
        return {}
    parts = re.split(r"; (?=[\w.-]+/\w+: )", text)
    return dict(p.split(": ", 1) for p in parts if ": " in p)


def load(client: MlflowClient, model_uri: str, workdir: Path) -> RegisteredVersion:
    """The version ``model_uri`` names (an alias resolved), with its MLmodel read."""
    from mlflow.models import Model
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    name, version, alias = parse_models_uri(model_uri)
    if alias:
        mv = call(client, f"lookup of {name}@{alias}", client.get_model_version_by_alias,
                  name, alias)
    else:
        mv = call(client, f"lookup of {name} version {version}", client.get_model_version,
                  name, version)
    artifact_uri = call(client, "lookup of the model's files",
                        client.get_model_version_download_uri, name, mv.version)
    local = Path(get_artifact_repository(artifact_uri).download_artifacts("MLmodel", str(workdir)))
    flavors = Model.load(str(local)).flavors
    if FLAVOR not in flavors:
        raise SpecError(f"{name} version {mv.version} has flavors {sorted(flavors)}, not "
                        f"{FLAVOR}", "deploy a version registered by trt-ops (trt_engine flavor)")
    engines, inputs, outputs = read_flavor(flavors[FLAVOR])
    tags = dict(mv.tags or {})
    return RegisteredVersion(name, str(mv.version), model_uri, mv.run_id, tags, artifact_uri,
                             engines, inputs, outputs, gate_verdicts(name, str(mv.version), tags))


def fetch_engines(version: RegisteredVersion, engines: list[ServedEngine],
                  workdir: Path) -> dict[str, Path]:
    """Local copies of ``engines`` by name, each checked against the sha256 in MLmodel."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from trt_ops.store.digest import sha256_file

    repo = get_artifact_repository(version.artifact_uri)
    files = {}
    for e in engines:
        path = Path(repo.download_artifacts(e.path, str(workdir)))
        found = sha256_file(path)
        if found != e.sha256:
            raise IntegrityError(
                f"engine {e.name} of {version.model_uri} ({e.path}) is corrupt: its sha256 is "
                f"{found}, MLmodel records {e.sha256}; nothing was written",
                "the artifact was changed or damaged in MLflow's artifact store after it was "
                "registered; restore it from the trt-ops store or register the engines again")
        files[e.name] = path
    return files
