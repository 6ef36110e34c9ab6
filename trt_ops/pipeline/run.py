"""The whole pipeline from one spec, in one process: ``trt-ops run``.

check data -> export -> calibrate (per precision and backend) -> build -> validate ->
benchmark, per target class; with ``fallback``, a failed gate builds the next precision on
that class; then register when the spec names a registry model. Every step is idempotent, so a
re-run is all cache hits. After each step the run's ``run.yaml`` (step, status, seconds, cache
hit) is rewritten in the store.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import yaml

from trt_ops.errors import TrtOpsError, redact
from trt_ops.pipeline import steps
from trt_ops.pipeline.summary import Attempt, RunSummary
from trt_ops.spec import PipelineSpec
from trt_ops.stages.validate import verdict_lines
from trt_ops.store import ArtifactStore, open_store
from trt_ops.store.manifest import Manifest, Status

log = logging.getLogger("trt_ops")

OnStep = Callable[[dict], None]


class _Recorder:
    """Rewrites runs/<id>/run.yaml after every step, so an interrupted run shows how far it got."""

    def __init__(self, store: ArtifactStore, summary: RunSummary, on_step: OnStep) -> None:
        self.store, self.summary, self.on_step = store, summary, on_step

    def step(self, name: str, fn: Callable[..., Manifest], *args: Any) -> Manifest:
        """``fn(*args)``, recorded as step ``name``."""
        start = time.perf_counter()
        entry: dict = {"step": name}
        try:
            manifest = fn(*args)
            entry.update(status=manifest.status.value, cache_hit=manifest.cache_hit)
            return manifest
        except BaseException as exc:  # recorded, whatever it is, then raised as it was
            entry.update(status=Status.FAIL.value, cache_hit=False)  # first: describing may fail
            try:
                problem = exc.problem if isinstance(exc, TrtOpsError) else \
                    f"{type(exc).__name__}: {exc}"
            except Exception:  # noqa: BLE001 (an exception whose str() itself fails)
                problem = type(exc).__name__
            entry["error"] = redact(problem)
            raise
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 3)
            self.summary.steps.append(entry)
            self.store.put_bytes(f"runs/{self.summary.run_id}/run.yaml",
                                 yaml.safe_dump({"run_id": self.summary.run_id,
                                                 "steps": self.summary.steps}).encode())
            self.on_step(entry)


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def run_pipeline(spec: PipelineSpec, *, spec_path: str | None = None,
                 on_step: OnStep = lambda e: None) -> RunSummary:
    store = open_store(spec.store)
    targets = steps.plan_targets(spec)  # refuse impossible combinations before any work
    summary = RunSummary(run_id=new_run_id(), spec_name=spec.name, store=store.uri)
    rec = _Recorder(store, summary, on_step)

    # GX suites over both sets: bad data stops here, before export and any build
    summary.data_check = rec.step("check_data", lambda: steps.check_data_step(spec, store))
    export = summary.export = rec.step("export", lambda: steps.export_step(spec, store))

    def calibrated(precision: str, backend: str) -> Manifest:
        key = f"{precision}/{backend}"
        if key not in summary.calibrations:
            summary.calibrations[key] = rec.step(f"calibrate {key}", lambda: steps.calibrate_step(
                spec, store, export, precision, backend))
        return summary.calibrations[key]

    for target in targets:
        for requested in spec.precisions:
            chain = steps.fallback_chain(requested, target) if spec.fallback else [requested]
            for i, precision in enumerate(chain):
                if i > 0 and precision in spec.precisions:
                    break  # that precision is built in its own right
                attempt = Attempt(target.name, precision, "FAILED",
                                  fallback_from=chain[i - 1] if i else None)
                summary.attempts.append(attempt)
                cal = calibrated(precision, target.backend)
                where = f"{target.name}/{precision}"
                attempt.build = rec.step(f"build {where}", steps.build_step,
                                         spec, store, cal, target.name)
                attempt.validation = rec.step(f"validate {where}", steps.validate_step,
                                              spec, store, attempt.build, export)
                for line in verdict_lines(attempt.validation):
                    log.info("%s %s", where, line)
                attempt.benchmark = rec.step(f"benchmark {where}", steps.benchmark_step,
                                             spec, store, attempt.build, export)
                if attempt.validation.status == Status.OK:
                    attempt.verdict = "PASSED"
                    break
                attempt.reason = "; ".join(line for line in verdict_lines(attempt.validation)
                                           if line.startswith("FAILED"))

    summary.reports = {f"{a.target}/{a.precision}": a.validation.artifact("report").uri
                       for a in summary.attempts if a.validation}
    if spec.registry.model_name:
        summary.registered = rec.step("register", lambda: steps.register_step(
            spec, store, export, [a.to_dict() for a in summary.attempts],
            list(summary.calibrations.values()), summary.run_id))
        if spec.serving.triton_repository:
            summary.published = rec.step("publish", lambda: steps.publish_step(
                spec, summary.registered))
    store.put_json(f"runs/{summary.run_id}/summary.json", summary.to_dict())
    store.put_bytes(f"runs/{summary.run_id}/summary.md", summary.markdown().encode())
    if spec_path:
        store.put_bytes(f"runs/{summary.run_id}/reproduce.sh",
                        f"#!/bin/sh\n# re-runs this pipeline (all cache hits if nothing changed)\n"
                        f"trt-ops run {spec_path}\n".encode())
    return summary
