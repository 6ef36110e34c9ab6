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

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.digest import cache_key
from trt_ops.errors import SpecError, TrtOpsError
from trt_ops.manifest import Manifest
from trt_ops.mlflow_client import RegistryError, call, mlflow_client
from trt_ops.store import ArtifactStore

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("trt_ops")

STAGE = "register"
DIGEST_TAG = "trt_ops.digest"
CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT = "engines"
# per-engine metrics copied from the validation and benchmark manifests
_METRICS = {"validation": ("accuracy_drop", "top1_agreement", "max_abs_error", "min_cosine"),
            "benchmark": ("latency_p50_ms", "latency_p99_ms", "throughput", "speedup")}


def register_engines(model_name: str, export: Manifest | dict, attempts: list[dict],
                     store: ArtifactStore, *, calibrations: Sequence[Manifest | dict] = (),
                     tracking_uri: str | None = None, registry_uri: str | None = None,
                     promote: bool = False, pipeline_run_id: str = "",
                     source: dict | None = None) -> Manifest:
    """Registers the PASSED attempts' engines as one version of ``model_name``; see the module doc.

    ``attempts`` are in ``Attempt.to_dict()`` form; FAILED ones are recorded in the description
    and tags. ``champion`` is set only when every attempt passed and ``promote`` is true.
    """
    export = Manifest.coerce(export)
    attempts = [a.to_dict() if hasattr(a, "to_dict") else dict(a) for a in attempts]
    cals = [Manifest.coerce(c) for c in calibrations]
    if not model_name or "/" in model_name or "@" in model_name:
        raise SpecError(f"registered model name {model_name!r} is invalid",
                        "set registry.model_name to a name without '/' or '@', e.g. digits-cnn")
    passed = sorted((a for a in attempts if a["verdict"] == "PASSED"), key=_latency)
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

    existing = _versions_with_digest(client, model_name, digest)
    if existing:
        log.info("register: %s version %s already holds these engines", model_name, existing[0])
        return _result(client, model_name, existing[0], digest, cache_hit=True)

    source = source or export.info.get("source") or {}
    tags = _tags(digest, export, attempts, passed, cals, source, pipeline_run_id)
    all_passed = all(a["verdict"] == "PASSED" for a in attempts)
    with tempfile.TemporaryDirectory(prefix="trt-ops-register-") as tmp:
        # every download is verified before anything is created in MLflow
        files = _fetch(store, export, passed, cals, Path(tmp))
        run_id = version = None
        try:
            run_id = _start_run(client, model_name, tags, pipeline_run_id)
            _log_run(client, run_id, passed, files)
            model_id = _log_engines(client, run_id, passed, builds, files)
            _ensure_registered_model(client, model_name)
            version = call(client, "creation of the model version", client.create_model_version,
                           model_name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                           description=_description(model_name, export, attempts, source,
                                                    pipeline_run_id),
                           model_id=model_id).version
            winner = _versions_with_digest(client, model_name, digest)[0]
            if winner != version:  # a concurrent task registered the same engines first
                log.info("register: %s version %s won the race; removing version %s",
                         model_name, winner, version)
                _rollback(client, model_name, version, run_id, f"duplicate of version {winner}")
                return _result(client, model_name, winner, digest, cache_hit=True)
            _store_version(store, model_name, version, digest, run_id, export, passed, builds, files)
            aliases = [CANDIDATE] + ([CHAMPION] if promote and all_passed else [])
            for alias in aliases:
                call(client, f"setting alias {alias}", client.set_registered_model_alias,
                     model_name, alias, version)
            call(client, "finishing the run", client.set_terminated, run_id, "FINISHED")
        except BaseException as exc:
            _rollback(client, model_name, version, run_id, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, TrtOpsError) or not isinstance(exc, Exception):
                raise
            raise RegistryError(f"registering {model_name} failed: {type(exc).__name__}: {exc}",
                                "nothing was registered; fix the cause and run the register "
                                "task again") from exc
    log.info("register: %s version %s (%s)", model_name, version, ", ".join(aliases))
    return _result(client, model_name, version, digest, cache_hit=False)


def _latency(attempt: dict[str, Any]) -> float:
    """Sort key: the fastest engine first, so a loader that fits several picks it."""
    bench = (attempt.get("benchmark") or {}).get("metrics", {})
    return float(bench.get("latency_p50_ms", float("inf")))


def _name(attempt: dict[str, Any]) -> str:
    return f"{attempt['target']}-{attempt['precision']}"


def _versions_with_digest(client: MlflowClient, model_name: str, digest: str) -> list[str]:
    """Versions of ``model_name`` tagged with ``digest``, oldest first."""
    found = call(client, f"search for versions of {model_name}", client.search_model_versions,
                 f"name = '{model_name}' and tags.`{DIGEST_TAG}` = '{digest}'")
    return sorted((mv.version for mv in found), key=int)


def _tags(digest: str, export: Manifest, attempts: list[dict], passed: list[dict],
          cals: list[Manifest], source: dict, pipeline_run_id: str) -> dict[str, str]:
    metas = [Manifest.coerce(a["build"]).info.get("metadata", {}) for a in passed]
    runtimes = sorted({f"{m.get('backend')} {m.get('backend_version')}" for m in metas})
    fallbacks = [f"{a['target']}: {a['fallback_from']} failed, {a['precision']} "
                 f"{a['verdict'].lower()}" for a in attempts if a.get("fallback_from")]
    failed = [f"{a['target']}/{a['precision']}: {a['reason']}" for a in attempts
              if a["verdict"] != "PASSED"]
    calib = sorted({c.inputs["calibration_data"] for c in cals if c.inputs.get("calibration_data")})
    tags = {
        DIGEST_TAG: digest,
        "trt_ops.source.uri": _source_uri(source),
        "trt_ops.source.version": _source_version(source),
        "trt_ops.onnx.sha256": export.artifact("onnx").sha256,
        "trt_ops.calibration_data.sha256": ",".join(calib) or "none",
        "trt_ops.precisions": ",".join(dict.fromkeys(a["precision"] for a in passed)),
        "trt_ops.gpu_classes": ",".join(dict.fromkeys(a["target"] for a in passed)),
        "trt_ops.runtimes": ", ".join(runtimes),
        "trt_ops.pipeline_run_id": pipeline_run_id or "none",
        "trt_ops.fallbacks": "; ".join(fallbacks) or "none",
        "trt_ops.failed": "; ".join(failed)[:5000] or "none",
        "trt_ops.all_gates_passed": str(len(failed) == 0).lower(),
    }
    for m in metas:  # e.g. trt_ops.tensorrt_version, trt_ops.onnxruntime_version
        tags[f"trt_ops.{m.get('backend')}_version"] = str(m.get("backend_version"))
    return tags


def _source_uri(source: dict, short: bool = False) -> str:
    """The source as a user names it; ``short`` keeps only file names (for the description)."""
    def name(path: str) -> str:
        return Path(path).name if short else path

    if source.get("registered"):
        return str(source["registered"])
    if source.get("program"):
        return name(str(source["program"]))
    return f"{source.get('factory', '?')}" + (f" + {name(source['state_dict'])}"
                                             if source.get("state_dict") else "")


def _source_version(source: dict) -> str:
    """The registered version (an alias resolved), or the weights' digest."""
    from trt_ops.sources import source_digest

    try:
        if source.get("registered"):
            from trt_ops.registry_source import resolve

            return resolve(str(source["registered"])).rsplit("/", 1)[-1]
        return source_digest(source).rsplit(":", 1)[-1] if source else "unknown"
    except TrtOpsError:  # e.g. the weights file is not on this worker: the URI still names it
        return "unknown"


def _fetch(store: ArtifactStore, export: Manifest, passed: list[dict], cals: list[Manifest],
           tmp: Path) -> dict[str, Path]:
    """Local, sha256-verified copies of everything the version will hold, by artifact path.

    Downloads are cached under their sha256; each is linked under the name it will have.
    """
    wanted = {"onnx/model.onnx": export.artifact("onnx")}
    for a in passed:
        build = Manifest.coerce(a["build"])
        wanted[f"engine/{_name(a)}/{Path(build.artifact('engine').uri).name}"] = \
            build.artifact("engine")
        validation = Manifest.coerce(a["validation"])
        for name in ("report", "error_histogram"):
            if name in validation.artifacts:
                art = validation.artifacts[name]
                wanted[f"validation/{_name(a)}/{Path(art.uri).name}"] = art
    for c in cals:
        if "onnx" in c.artifacts and c.spec.get("precision"):
            wanted[f"calibrated/{c.spec['precision']}-{c.spec.get('backend', 'any')}.onnx"] = \
                c.artifacts["onnx"]
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


def _engine_file(files: dict[str, Path], attempt: dict[str, Any]) -> Path:
    return next(p for k, p in files.items() if k.startswith(f"engine/{_name(attempt)}/"))


def _start_run(client: MlflowClient, model_name: str, tags: dict[str, str],
               pipeline_run_id: str) -> str:
    experiment = f"trt-ops/{model_name}"
    found = call(client, f"lookup of experiment {experiment}", client.get_experiment_by_name,
                 experiment)
    if found is None:
        try:
            exp_id = call(client, f"creation of experiment {experiment}",
                          client.create_experiment, experiment)
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


def _log_run(client: MlflowClient, run_id: str, passed: list[dict], files: dict[str, Path]) -> None:
    from mlflow.entities import Metric

    metrics = []
    for a in passed:
        for stage, keys in _METRICS.items():
            values = (a.get(stage) or {}).get("metrics", {})
            metrics += [Metric(f"{_name(a)}.{k}", float(values[k]), 0, 0) for k in keys
                        if isinstance(values.get(k), (int, float))]
    call(client, "logging metrics", client.log_batch, run_id, metrics=metrics)
    for key, path in files.items():
        if not key.startswith(("engine/", "onnx/")):
            call(client, f"upload of {key}", client.log_artifact, run_id, str(path),
                 str(Path(key).parent) if "/" in key else None)


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """``Model.log`` resolves the server from the global tracking URI: point it at ours."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _log_engines(client: MlflowClient, run_id: str, passed: list[dict], builds: list[Manifest],
                 files: dict[str, Path]) -> str:
    from mlflow_plugins import trt_engine

    engines = [{"name": _name(a), "path": str(_engine_file(files, a)),
                "metadata": b.info["metadata"], "uri": b.artifact("engine").uri,
                "target": a["target"]} for a, b in zip(passed, builds)]
    with _tracking_uri(client.tracking_uri):
        info = call(client, "upload of the engines", trt_engine.log_model, engines,
                    files["onnx/model.onnx"], name=MODEL_ARTIFACT, run_id=run_id)
    return info.model_id


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            model_name, description="Inference engines built and validated by trt-ops.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            call(client, f"creation of registered model {model_name}",
                 client.get_registered_model, model_name)


def _description(model_name: str, export: Manifest, attempts: list[dict], source: dict,
                 pipeline_run_id: str) -> str:
    rows = [("| target | precision | verdict | hardware | runtime | top-1 agreement | "
             "accuracy drop | max abs error | p50 ms | p99 ms | throughput/s | speedup |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    batch = next((a["benchmark"]["metrics"].get("batch_size") for a in attempts
                  if a.get("benchmark")), "-")
    for a in attempts:
        build = Manifest.coerce(a["build"]) if a.get("build") else None
        meta = build.info.get("metadata", {}) if build else {}
        hw = meta.get("hardware") or {}
        v = (a.get("validation") or {}).get("metrics", {})
        b = (a.get("benchmark") or {}).get("metrics", {})

        def f(d: dict, k: str, fmt: str) -> str:
            return format(d[k], fmt) if isinstance(d.get(k), (int, float)) else "-"

        verdict = "PASSED" if a["verdict"] == "PASSED" else f"**FAILED**: {a['reason'] or '-'}"
        precision = a["precision"] + (f" (fallback from {a['fallback_from']})"
                                      if a.get("fallback_from") else "")
        rows.append(" | ".join([
            f"| {a['target']}", precision, verdict.replace("|", "/"),
            str(meta.get("gpu_product") or hw.get("gpu_product") or hw.get("cpu_isa") or "-"),
            f"{meta.get('backend', '-')} {meta.get('backend_version', '')}".strip(),
            f(v, "top1_agreement", ".4f"), f(v, "accuracy_drop", ".4f"),
            f(v, "max_abs_error", ".3g"), f(b, "latency_p50_ms", ".3f"),
            f(b, "latency_p99_ms", ".3f"), f(b, "throughput", ",.0f"),
            (f(b, "speedup", ".2f") + "x").replace("-x", "-") + " |"]))
    intro = (f"Engines of `{_source_uri(source, short=True)}` compiled and validated by trt-ops "
             f"(pipeline run `{pipeline_run_id or '-'}`); latencies at batch {batch}, speedup "
             "over the PyTorch reference.")
    outro = (f"ONNX sha256 `{export.artifact('onnx').sha256[:16]}…`. Load the engine that fits "
             f"the local machine with `mlflow.pyfunc.load_model(\"models:/{model_name}@candidate\")`.")
    return "\n".join([intro, "", *rows, "", outro])


def _store_version(store: ArtifactStore, model_name: str, version: str, digest: str, run_id: str,
                   export: Manifest, passed: list[dict], builds: list[Manifest],
                   files: dict[str, Path]) -> None:
    """Engines under content-addressed keys, then the version's manifest (written last)."""
    engines = []
    for a, b in zip(passed, builds):
        art = b.artifact("engine")
        key = f"engines/sha256/{art.sha256}/{Path(art.uri).name}"
        stored = store.put_file(key, _engine_file(files, a))  # same key = same bytes
        engines.append({"name": _name(a), "target": a["target"], "precision": a["precision"],
                        "uri": stored.uri, "sha256": stored.sha256, "size": stored.size,
                        "metadata": b.info.get("metadata", {})})
    store.put_json(f"registry/{model_name}/{version}/manifest.json", {
        "model_name": model_name, "version": version, "model_uri": f"models:/{model_name}/{version}",
        "digest": digest, "mlflow_run_id": run_id, "onnx": export.artifact("onnx").to_dict(),
        "engines": engines})


def _rollback(client: MlflowClient, model_name: str, version: str | None, run_id: str | None,
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


def _result(client: MlflowClient, model_name: str, version: str, digest: str,
            cache_hit: bool) -> Manifest:
    mv = call(client, f"lookup of {model_name} version {version}", client.get_model_version,
              model_name, version)
    return Manifest(stage=STAGE, key=digest, cache_hit=cache_hit, info={
        "model_name": model_name, "version": str(version),
        "model_uri": f"models:/{model_name}/{version}", "aliases": sorted(mv.aliases or []),
        "run_id": mv.run_id, "digest": digest})
