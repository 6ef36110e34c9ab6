"""Register stage: one pipeline run's validated engines become one MLflow model version.

The version carries the lineage (source model, ONNX and calibration digests, runtimes, the
pipeline run), per-engine metrics, a Markdown table of engines, and the artifacts (engines in
the ``trt_engine`` flavor, the calibrated ONNX, validation reports). In the trt-ops store each
engine is also kept under a content-addressed key, with a manifest per version.

Registration is idempotent: a digest of the inputs is a tag on the version, so registering the
same engines again returns the existing version, also when two tasks race. A failure midway
deletes what was created (the model version) and marks the MLflow run FAILED.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trt_ops.errors import SpecError, TrtOpsError
from trt_ops.models.onnx import external_data_name
from trt_ops.registry.client import RegistryError, call, mlflow_client, mlflow_scope
from trt_ops.registry.lineage import (
    engine_contract,
    engine_name,
    latency_key,
    version_description,
    version_tags,
)
from trt_ops.registry.versions import (
    engine_file,
    ensure_registered_model,
    log_engines,
    log_run,
    rollback,
    start_run,
    version_manifest,
    versions_with_digest,
)
from trt_ops.store import ArtifactStore
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest

log = logging.getLogger("trt_ops")

STAGE = "register"
CANDIDATE, CHAMPION = "candidate", "champion"


def register_engines(model_name: str, export: Manifest | dict, attempts: list[dict],
                     store: ArtifactStore, *, calibrations: Sequence[Manifest | dict] = (),
                     tracking_uri: str | None = None, registry_uri: str | None = None,
                     token: str | None = None, promote: bool = False,
                     pipeline_run_id: str = "", source: dict | None = None) -> Manifest:
    """Registers the PASSED attempts' engines as one version of ``model_name``; see the module doc.

    ``attempts`` are in ``Attempt.to_dict()`` form; FAILED ones are recorded in the description
    and tags. ``champion`` is set only when every attempt passed and ``promote`` is true.
    MLflow is reached at ``tracking_uri``/``registry_uri`` (default: MLflow's environment) with
    ``token``, for this call only.
    """
    with mlflow_scope(tracking_uri, registry_uri, token):
        return _register(model_name, export, attempts, store, calibrations=calibrations,
                         tracking_uri=tracking_uri, registry_uri=registry_uri, promote=promote,
                         pipeline_run_id=pipeline_run_id, source=source)


def _register(model_name: str, export: Manifest | dict, attempts: list[dict],
              store: ArtifactStore, *, calibrations: Sequence[Manifest | dict],
              tracking_uri: str | None, registry_uri: str | None, promote: bool,
              pipeline_run_id: str, source: dict | None) -> Manifest:
    export = Manifest.coerce(export)
    attempts = [a.to_dict() if hasattr(a, "to_dict") else dict(a) for a in attempts]
    cals = [Manifest.coerce(c) for c in calibrations]
    if not model_name or "/" in model_name or "@" in model_name:
        raise SpecError(f"registered model name {model_name!r} is invalid",
                        "set registry.model_name to a name without '/' or '@', e.g. digits-cnn")
    passed = sorted((a for a in attempts if a["verdict"] == "PASSED"), key=latency_key)
    if not passed:
        raise SpecError(
            "no engine of this run passed its gate, so nothing was registered: "
            + ("; ".join(f"{a['target']}/{a['precision']}: {a['reason'] or a['verdict']}"
                         for a in attempts) or "the run has no engine attempts"),
            "look at the validation reports, then relax the thresholds, enable fallback or "
            "change the calibration; register again once an engine passes")
    builds = [Manifest.coerce(a["build"]) for a in passed]
    onnx = export.artifact("onnx")
    digest = cache_key(STAGE, model=model_name, onnx=onnx.sha256,
                       engines=sorted(b.artifact("engine").sha256 for b in builds))
    client = mlflow_client(tracking_uri, registry_uri)

    existing = versions_with_digest(client, model_name, digest)
    if existing:
        log.info("register: %s version %s already holds these engines", model_name, existing[0])
        return version_manifest(client, model_name, existing[0], digest, cache_hit=True)

    source = source or export.info.get("source") or {}
    tags = version_tags(digest, export, attempts, passed, cals, source, pipeline_run_id)
    all_passed = all(a["verdict"] == "PASSED" for a in attempts)
    with tempfile.TemporaryDirectory(prefix="trt-ops-register-") as tmp:
        # every download is verified before anything is created in MLflow
        files = _fetch(store, export, passed, cals, Path(tmp))
        run_id = version = None
        try:
            run_id = start_run(client, model_name, tags, pipeline_run_id)
            log_run(client, run_id, passed, files)
            model_id = log_engines(client, run_id, passed, builds, files)
            ensure_registered_model(client, model_name)
            version = call(client, "creation of the model version", client.create_model_version,
                           model_name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                           description=version_description(model_name, export, attempts, source,
                                                    pipeline_run_id),
                           model_id=model_id).version
            winner = versions_with_digest(client, model_name, digest)[0]
            if winner != version:  # a concurrent task registered the same engines first
                log.info("register: %s version %s won the race; removing version %s",
                         model_name, winner, version)
                rollback(client, model_name, version, run_id, f"duplicate of version {winner}")
                return version_manifest(client, model_name, winner, digest, cache_hit=True)
            _store_version(store, model_name, version, digest, run_id, export, passed, builds, files)
            aliases = [CANDIDATE] + ([CHAMPION] if promote and all_passed else [])
            for alias in aliases:
                call(client, f"setting alias {alias}", client.set_registered_model_alias,
                     model_name, alias, version)
            call(client, "finishing the run", client.set_terminated, run_id, "FINISHED")
        except BaseException as exc:
            rollback(client, model_name, version, run_id, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, TrtOpsError) or not isinstance(exc, Exception):
                raise
            raise RegistryError(f"registering {model_name} failed: {type(exc).__name__}: {exc}",
                                "nothing was registered; fix the cause and run the register "
                                "task again") from exc
    log.info("register: %s version %s (%s)", model_name, version, ", ".join(aliases))
    return version_manifest(client, model_name, version, digest, cache_hit=False)


def _fetch(store: ArtifactStore, export: Manifest, passed: list[dict], cals: list[Manifest],
           tmp: Path) -> dict[str, Path]:
    """Local, sha256-verified copies of everything the version will hold, by artifact path.

    Downloads are cached under their sha256; each is linked under the name it will have.
    """
    wanted = {"onnx/model.onnx": export.artifact("onnx")}
    if "onnx_data" in export.artifacts:  # a model over 2 GB: its weights beside it
        name = external_data_name(export.info.get("external_data"), "the export manifest")
        wanted[f"onnx/{name}"] = export.artifact("onnx_data")
    for a in passed:
        build = Manifest.coerce(a["build"])
        wanted[f"engine/{engine_name(a)}/{Path(build.artifact('engine').uri).name}"] = \
            build.artifact("engine")
        if "engine_data" in build.artifacts:
            data = build.artifact("engine_data")
            wanted[f"engine/{engine_name(a)}/{Path(data.uri).name}"] = data
        validation = Manifest.coerce(a["validation"])
        for name in ("report", "error_histogram"):
            if name in validation.artifacts:
                art = validation.artifacts[name]
                wanted[f"validation/{engine_name(a)}/{Path(art.uri).name}"] = art
    for c in cals:
        if "onnx" in c.artifacts and c.spec.get("precision"):
            which = f"{c.spec['precision']}-{c.spec.get('backend', 'any')}"
            wanted[f"calibrated/{which}.onnx"] = c.artifacts["onnx"]
            for name in ("calibration_report", "calibration_plot", "calibration_layers"):
                if name in c.artifacts:  # the per-layer report, logged with the engines
                    art = c.artifacts[name]
                    wanted[f"calibration/{which}/{Path(art.uri).name}"] = art
    files = {}
    for key, art in wanted.items():
        files[key] = tmp / key
        files[key].parent.mkdir(parents=True, exist_ok=True)
        files[key].symlink_to(store.fetch(art))
    files["lineage.json"] = tmp / "lineage.json"
    files["lineage.json"].write_text(json.dumps(
        {"export": export.to_dict(), "attempts": passed,
         "calibrations": [c.to_dict() for c in cals]}, indent=2, sort_keys=True))
    return files


def _store_version(store: ArtifactStore, model_name: str, version: str, digest: str, run_id: str,
                   export: Manifest, passed: list[dict], builds: list[Manifest],
                   files: dict[str, Path]) -> None:
    """Engines under content-addressed keys, then the version's manifest (written last)."""
    engines = []
    for a, b in zip(passed, builds):
        art = b.artifact("engine")
        key = f"engines/sha256/{art.sha256}/{Path(art.uri).name}"
        stored = store.put_file(key, engine_file(files, a))  # same key = same bytes
        engines.append({"name": engine_name(a), "target": a["target"], "precision": a["precision"],
                        "uri": stored.uri, "sha256": stored.sha256, "size": stored.size,
                        "metadata": engine_contract(a).model_dump(mode="json")})
    store.put_json(f"registry/{model_name}/{version}/manifest.json", {
        "model_name": model_name, "version": version, "model_uri": f"models:/{model_name}/{version}",
        "digest": digest, "mlflow_run_id": run_id, "onnx": export.artifact("onnx").to_dict(),
        "engines": engines})


