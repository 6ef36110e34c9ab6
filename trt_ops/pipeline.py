"""The whole pipeline from one spec, in one process: the CLI's ``trt-ops run``.

export -> check data -> calibrate (per precision and backend) -> build -> validate ->
benchmark, per target class. Every step is idempotent, so a re-run is all cache hits. After
each step the run's ``run.yaml`` (stage, status, seconds, cache hit) is rewritten in the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from typing import Any, Callable

import yaml

from trt_ops import __version__
from trt_ops.benchmark import benchmark_engine
from trt_ops.build import build_engine
from trt_ops.calibrate import calibrate
from trt_ops.data_checks import check_data
from trt_ops.engines import get_backend
from trt_ops.errors import SpecError, TrtOpsError
from trt_ops.export import export_onnx
from trt_ops.hardware import host_info
from trt_ops.manifest import Manifest, Status
from trt_ops.spec import PipelineSpec
from trt_ops.store import ArtifactStore, open_store
from trt_ops.targets import Target, get_target, load_catalog
from trt_ops.validate import validate_engine, verdict_lines

log = logging.getLogger("trt_ops")

# When an engine fails its gate and the spec allows fallback, the next precision is tried.
FALLBACK_ORDER = ("fp8", "int8", "fp16", "fp32")


@dataclasses.dataclass
class Attempt:
    target: str
    precision: str
    verdict: str  # PASSED | FAILED
    reason: str = ""
    fallback_from: str | None = None
    build: Manifest | None = None
    validation: Manifest | None = None
    benchmark: Manifest | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("target", "precision", "verdict", "reason", "fallback_from")}
        for k in ("build", "validation", "benchmark"):
            m = getattr(self, k)
            d[k] = m.to_dict() if m else None
        return d


@dataclasses.dataclass
class RunSummary:
    run_id: str
    spec_name: str
    store: str
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    data_check: Manifest | None = None
    export: Manifest | None = None
    calibrations: dict[str, Manifest] = dataclasses.field(default_factory=dict)
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    reports: dict[str, str] = dataclasses.field(default_factory=dict)
    registered: Manifest | None = None  # the model version, when spec.registry names a model

    @property
    def engines(self) -> list[Attempt]:
        """The attempts whose engine passed its gate."""
        return [a for a in self.attempts if a.verdict == "PASSED"]

    @property
    def work_done(self) -> list[str]:
        """Steps that computed something (not cache hits)."""
        return [s["step"] for s in self.steps if not s["cache_hit"]]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "spec_name": self.spec_name, "store": self.store,
                "trt_ops_version": __version__, "steps": self.steps,
                "data_check": self.data_check.to_dict() if self.data_check else None,
                "export": self.export.to_dict() if self.export else None,
                "calibrations": {k: v.to_dict() for k, v in self.calibrations.items()},
                "attempts": [a.to_dict() for a in self.attempts], "reports": self.reports,
                "registered": self.registered.to_dict() if self.registered else None}

    def markdown(self) -> str:
        rows = ["| target | precision | verdict | top-1 agreement | max abs error | "
                "p50 ms (batch) | speedup vs PyTorch | engine |",
                "|---|---|---|---|---|---|---|---|"]
        for a in self.attempts:
            v = a.validation.metrics if a.validation else {}
            b = a.benchmark.metrics if a.benchmark else {}
            precision = a.precision + (f" (fallback from {a.fallback_from})" if a.fallback_from else "")
            agree = f"{v['top1_agreement']:.4f}" if "top1_agreement" in v else "-"
            err = f"{v['max_abs_error']:.3g}" if "max_abs_error" in v else "-"
            p50 = f"{b['latency_p50_ms']:.2f} ({b['batch_size']})" if b else "-"
            speed = f"{b['speedup']:.2f}x" if "speedup" in b else "-"
            uri = a.build.artifact("engine").uri if a.build else "-"
            rows.append(f"| {a.target} | {precision} | {a.verdict} | {agree} | {err} | {p50} | "
                        f"{speed} | {uri} |")
        return "\n".join(rows)


def default_targets() -> tuple[str, ...]:
    """The catalog class of this machine: its GPU when TensorRT is usable, else its CPU."""
    host = host_info()
    catalog = load_catalog()
    if host.gpus and get_backend("tensorrt").unavailable_reason() is None:
        for t in catalog.values():
            if t.gpu_product == host.gpus[0].product:
                return (t.name,)
    for t in catalog.values():
        if t.backend == "onnxruntime" and t.cpu_isa == host.cpu_isa:
            return (t.name,)
    raise SpecError(f"no catalog class matches this machine ({host.cpu_isa}, GPUs: "
                    f"{[g.product for g in host.gpus] or 'none'})",
                    "name targets in the spec, or add a class for this machine to the catalog "
                    "(TRT_OPS_TARGETS)")


def fallback_chain(precision: str, target: Target) -> list[str]:
    """``precision`` and the lower precisions the target's backend can run, in order."""
    backend = get_backend(target.backend)
    if precision not in FALLBACK_ORDER:
        return [precision]
    later = FALLBACK_ORDER[FALLBACK_ORDER.index(precision):]
    return [p for p in later if p in backend.precisions]


class _Recorder:
    """Rewrites runs/<id>/run.yaml after every step, so an interrupted run shows how far it got."""

    def __init__(self, store: ArtifactStore, summary: RunSummary, on_step: Callable[[dict[str, Any]], None]):
        self.store, self.summary, self.on_step = store, summary, on_step

    def step(self, name: str, fn: Callable[[], Manifest]) -> Manifest:
        start = time.perf_counter()
        entry: dict[str, Any] = {"step": name}
        try:
            manifest = fn()
            entry.update(status=manifest.status.value, cache_hit=manifest.cache_hit)
            return manifest
        except TrtOpsError as exc:
            entry.update(status=Status.FAIL.value, cache_hit=False, error=exc.problem)
            raise
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 3)
            self.summary.steps.append(entry)
            self.store.put_bytes(f"runs/{self.summary.run_id}/run.yaml",
                                 yaml.safe_dump({"run_id": self.summary.run_id,
                                                 "steps": self.summary.steps}).encode())
            self.on_step(entry)


def run_pipeline(spec: PipelineSpec, *, spec_path: str | None = None,
                 on_step: Callable[[dict[str, Any]], None] = lambda e: None) -> RunSummary:
    store = open_store(spec.store)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    summary = RunSummary(run_id=run_id, spec_name=spec.name, store=store.uri)
    rec = _Recorder(store, summary, on_step)
    inputs = spec.model.inputs

    targets = [get_target(t) for t in (spec.targets or default_targets())]
    for t in targets:  # refuse impossible combinations before any work
        for p in spec.precisions:
            get_backend(t.backend).check_precision(p, t)
    too_big = [b for b in spec.benchmark.batch_sizes if b > spec.max_batch]
    if too_big:
        raise SpecError(f"benchmark batch sizes {too_big} exceed max_batch {spec.max_batch}",
                        "raise max_batch (the engines' shape profile) or drop those batch sizes")

    # GX suites over both sets: bad data stops here, before export and any build
    summary.data_check = rec.step("check_data", lambda: check_data(
        spec.data.calibration, spec.data.validation, inputs, store, ranges=spec.data.ranges,
        min_samples=spec.data.min_samples, classes=spec.data.classes))
    export = rec.step("export", lambda: export_onnx(
        spec.model.source(), inputs, store, output_names=spec.model.outputs,
        tolerance=spec.export_tolerance))
    summary.export = export

    def calibrated(precision: str, backend: str) -> Manifest:
        key = f"{precision}/{backend}"
        if key not in summary.calibrations:
            summary.calibrations[key] = rec.step(f"calibrate {key}", lambda: calibrate(
                export, spec.data.calibration, inputs, precision, backend, store,
                samples=spec.data.calibration_samples, method=spec.data.calibration_method))
        return summary.calibrations[key]

    for target in targets:
        for requested in spec.precisions:
            chain = fallback_chain(requested, target) if spec.fallback else [requested]
            for i, precision in enumerate(chain):
                if i > 0 and precision in spec.precisions:
                    break  # that precision is built in its own right
                attempt = Attempt(target.name, precision, "FAILED",
                                  fallback_from=chain[i - 1] if i else None)
                summary.attempts.append(attempt)
                cal = calibrated(precision, target.backend)
                where = f"{target.name}/{precision}"
                attempt.build = rec.step(f"build {where}", lambda: build_engine(
                    cal, target.name, store, profile=spec.profile(),
                    options=spec.builder_options.get(target.backend, {})))
                attempt.validation = rec.step(f"validate {where}", lambda: validate_engine(
                    attempt.build, export, spec.data.validation, inputs, store,
                    task=spec.model.task, thresholds=spec.thresholds_for(precision)))
                for line in verdict_lines(attempt.validation):
                    log.info("%s %s", where, line)
                attempt.benchmark = rec.step(f"benchmark {where}", lambda: benchmark_engine(
                    attempt.build, export, inputs, store,
                    batch_sizes=spec.benchmark.batch_sizes, iterations=spec.benchmark.iterations,
                    warmup=spec.benchmark.warmup, streams=spec.benchmark.streams))
                if attempt.validation.status == Status.OK:
                    attempt.verdict = "PASSED"
                    break
                attempt.reason = "; ".join(l for l in verdict_lines(attempt.validation)
                                           if l.startswith("FAILED"))

    summary.reports = {a.target + "/" + a.precision: a.validation.artifact("report").uri
                       for a in summary.attempts if a.validation}
    if spec.registry.get("model_name"):
        from trt_ops.register import register_engines

        summary.registered = rec.step("register", lambda: register_engines(
            spec.registry["model_name"], export, [a.to_dict() for a in summary.attempts], store,
            calibrations=list(summary.calibrations.values()),
            tracking_uri=spec.registry.get("tracking_uri"),
            registry_uri=spec.registry.get("registry_uri"), promote=spec.promote,
            pipeline_run_id=run_id, source=spec.model.source()))
    store.put_json(f"runs/{run_id}/summary.json", summary.to_dict())
    store.put_bytes(f"runs/{run_id}/summary.md", summary.markdown().encode())
    if spec_path:
        store.put_bytes(f"runs/{run_id}/reproduce.sh",
                        f"#!/bin/sh\n# re-runs this pipeline (all cache hits if nothing changed)\n"
                        f"trt-ops run {spec_path}\n".encode())
    return summary
