"""What a model version says about its engines: lineage tags and the Markdown description."""

from __future__ import annotations

# the tag that makes registration idempotent: a digest of the model name, ONNX and engines
DIGEST_TAG = "trt_ops.digest"

from pathlib import Path
from typing import Any

from trt_ops.engines.contract import OnnxRuntimeEngine, TensorRTEngine, engine_from_metadata
from trt_ops.errors import TrtOpsError
from trt_ops.store.manifest import Manifest

# per-engine metrics copied from the validation and benchmark manifests
ENGINE_METRICS = {"validation": ("accuracy_drop", "top1_agreement", "max_abs_error", "min_cosine"),
            "benchmark": ("latency_p50_ms", "latency_p99_ms", "throughput", "speedup")}


def latency_key(attempt: dict[str, Any]) -> float:
    """Sort key: the fastest engine first, so a loader that fits several picks it."""
    bench = (attempt.get("benchmark") or {}).get("metrics", {})
    return float(bench.get("latency_p50_ms", float("inf")))


# the precision ladder: at equal speed the lower precision wins (mixed int8 is int8)
LADDER = ("fp8", "int8", "fp16", "bf16", "fp32")


def recommended(passed: list[dict[str, Any]]) -> dict[str, str]:
    """Per hardware class, the name of the fastest engine that passed its gate (by its benchmark;
    where none was timed, by the ladder: int8, mixed or not, before fp16 before fp32)."""
    best: dict[str, dict[str, Any]] = {}
    for a in passed:
        rank = (latency_key(a), LADDER.index(a["precision"]) if a["precision"] in LADDER else 99)
        current = best.get(a["target"])
        if current is None or rank < current["rank"]:
            best[a["target"]] = {"rank": rank, "name": engine_name(a)}
    return {target: b["name"] for target, b in best.items()}


def float_layers_tag(calibration: Manifest) -> str:
    """What a mixed-precision calibration kept float and why: each layer with its sensitivity."""
    mixed = calibration.info.get("mixed_precision") or {}
    layers = mixed.get("float_layers", [])
    if not layers:
        return f"none ({mixed.get('reason', 'no search')})"
    head = (f"{len(layers)} of {mixed.get('quantized_layers')} quantized layers kept float, "
            f"gate {'passed' if mixed.get('passed') else 'not passed'} on "
            f"{mixed.get('holdout_samples')} held-out samples; sensitivity (output error with "
            "the layer alone in int8): ")
    return (head + ", ".join(f"{f['name']} ({f['sensitivity']:.3g})" for f in layers))[:5000]


def engine_name(attempt: dict[str, Any]) -> str:
    return f"{attempt['target']}-{attempt['precision']}"


def version_tags(digest: str, export: Manifest, attempts: list[dict], passed: list[dict],
          cals: list[Manifest], source: dict, pipeline_run_id: str) -> dict[str, str]:
    metas = [engine_contract(a) for a in passed]
    runtimes = sorted({f"{m.backend} {m.backend_version}" for m in metas})
    fallbacks = [f"{a['target']}: {a['fallback_from']} failed, {a['precision']} "
                 f"{a['verdict'].lower()}" for a in attempts if a.get("fallback_from")]
    failed = [f"{a['target']}/{a['precision']}: {a['reason']}" for a in attempts
              if a["verdict"] != "PASSED"]
    calib = sorted({c.inputs["calibration_data"] for c in cals if c.inputs.get("calibration_data")})
    tags = {
        DIGEST_TAG: digest,
        "trt_ops.source.uri": source_uri(source),
        "trt_ops.source.version": source_version(source),
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
    for target, name in recommended(passed).items():  # the engine a loader of that class takes
        tags[f"trt_ops.recommended.{target}"] = name
    for c in cals:
        if c.info.get("mixed_precision"):
            tags[f"trt_ops.float_layers.{c.spec['precision']}-{c.spec['backend']}"] = \
                float_layers_tag(c)
    for m in metas:  # e.g. trt_ops.tensorrt_version, trt_ops.onnxruntime_version
        tags[f"trt_ops.{m.backend}_version"] = m.backend_version
    return tags


def engine_contract(attempt: dict[str, Any]) -> TensorRTEngine | OnnxRuntimeEngine:
    """The engine contract of an attempt's build manifest, validated."""
    build = Manifest.coerce(attempt["build"])
    return engine_from_metadata(build.info.get("metadata") or {},
                                f"the engine of {attempt['target']}/{attempt['precision']}")


def source_uri(source: dict, short: bool = False) -> str:
    """The source as a user names it; ``short`` keeps only file names (for the description)."""
    def name(path: str) -> str:
        return Path(path).name if short else path

    if source.get("registered"):
        return str(source["registered"])
    if source.get("program"):
        return name(str(source["program"]))
    if source.get("onnx"):
        return name(str(source["onnx"]))
    return f"{source.get('factory', '?')}" + (f" + {name(source['state_dict'])}"
                                             if source.get("state_dict") else "")


def source_version(source: dict) -> str:
    """The registered version (an alias resolved), or the weights' digest."""
    from trt_ops.models.sources import source_digest

    try:
        if source.get("registered"):
            from trt_ops.models.registered import resolve

            return resolve(str(source["registered"])).rsplit("/", 1)[-1]
        return source_digest(source).rsplit(":", 1)[-1] if source else "unknown"
    except TrtOpsError:  # e.g. the weights file is not on this worker: the URI still names it
        return "unknown"


def version_description(model_name: str, export: Manifest, attempts: list[dict], source: dict,
                 pipeline_run_id: str) -> str:
    rows = [("| target | precision | verdict | hardware | runtime | top-1 agreement | "
             "accuracy drop | max abs error | p50 ms | p99 ms | throughput/s | speedup |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    batch = next((a["benchmark"]["metrics"].get("batch_size") for a in attempts
                  if a.get("benchmark")), "-")
    for a in attempts:
        meta = engine_contract(a) if a.get("build") else None
        v = (a.get("validation") or {}).get("metrics", {})
        b = (a.get("benchmark") or {}).get("metrics", {})

        def f(d: dict, k: str, fmt: str) -> str:
            return format(d[k], fmt) if isinstance(d.get(k), (int, float)) else "-"

        verdict = "PASSED" if a["verdict"] == "PASSED" else f"**FAILED**: {a['reason'] or '-'}"
        precision = a["precision"] + (f" (fallback from {a['fallback_from']})"
                                      if a.get("fallback_from") else "")
        rows.append(" | ".join([
            f"| {a['target']}", precision, verdict.replace("|", "/"),
            meta.hardware_name() if meta else "-",
            f"{meta.backend} {meta.backend_version}" if meta else "-",
            f(v, "top1_agreement", ".4f"), f(v, "accuracy_drop", ".4f"),
            f(v, "max_abs_error", ".3g"), f(b, "latency_p50_ms", ".3f"),
            f(b, "latency_p99_ms", ".3f"), f(b, "throughput", ",.0f"),
            (f(b, "speedup", ".2f") + "x").replace("-x", "-") + " |"]))
    intro = (f"Engines of `{source_uri(source, short=True)}` compiled and validated by trt-ops "
             f"(pipeline run `{pipeline_run_id or '-'}`); latencies at batch {batch}, speedup "
             "over the PyTorch reference.")
    outro = (f"ONNX sha256 `{export.artifact('onnx').sha256[:16]}…`. Load the engine that fits "
             f"the local machine with `mlflow.pyfunc.load_model(\"models:/{model_name}@candidate\")`.")
    best = recommended([a for a in attempts if a["verdict"] == "PASSED"])
    picks = "Recommended per class (the fastest that passed): " + ", ".join(
        f"{t}: `{n}`" for t, n in best.items()) + "."
    return "\n".join([intro, "", *rows, "", picks, "", outro])
