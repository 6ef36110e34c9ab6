from __future__ import annotations

from functools import cached_property
from typing import Any

from trt_ops.operators.base import (
    TrtOpsBaseOperator,
    flat_list,
    manifest,
    trt_template_fields,
)


def pair_attempts(builds: list[dict[str, Any]], validations: list[dict[str, Any]],
                  benchmarks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One attempt per built engine: its build, validation and benchmark manifests, matched by
    the engine's digest, and its verdict (PASSED when the validation gate passed)."""
    from trt_ops.pipeline.summary import attempt_of
    from trt_ops.store.manifest import Manifest

    by_engine_v = {v["inputs"]["engine"]: v for v in validations}
    by_engine_b = {b["inputs"]["engine"]: b for b in benchmarks}
    attempts = []
    for b in builds:
        sha = b["artifacts"]["engine"]["sha256"]
        val, bench = by_engine_v.get(sha), by_engine_b.get(sha)
        attempts.append(attempt_of(Manifest.from_dict(b), val and Manifest.from_dict(val),
                                   bench and Manifest.from_dict(bench)).to_dict())
    return sorted(attempts, key=lambda a: (a["target"], a["precision"]))


class RegisterEnginesOperator(TrtOpsBaseOperator):
    """Registers the engines that passed their gates as one MLflow model version, with the
    whole manifest chain as lineage (:func:`trt_ops.pipeline.steps.register_step`). Engines
    that failed are recorded, not registered. Re-running registers nothing new.

    An ``Asset`` among the task's ``outlets`` gets an event whose extra carries the model name,
    version, model URI and aliases, so DAGs scheduled on it know what was registered.

    :param export: the export task's manifest (templated)
    :param builds, validations, benchmarks: manifests of every class's mapped tasks; lists of
        lists are flattened and skipped classes (``None``) dropped (templated)
    :param calibrations: the calibrate tasks' manifests (templated)
    :param fallbacks: the fallback tasks' results (attempts on lower precisions, and their
        calibrations), recorded like the others (templated)
    :param mlflow_conn_id: the ``mlflow`` connection (tracking URI, registry URI, token); when
        it is not defined, the spec's ``registry`` section, then MLflow's environment

    The model name (default: the spec's name) and ``promote`` come from the spec's ``registry``.
    """

    template_fields = trt_template_fields("export", "builds", "validations", "benchmarks",
                                          "calibrations", "fallbacks")
    ui_color = "#d6eaf8"

    def __init__(self, *, export: Any, builds: Any, validations: Any, benchmarks: Any,
                 calibrations: Any = (), fallbacks: Any = (), mlflow_conn_id: str | None = "mlflow_default",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export
        self.builds = builds
        self.validations = validations
        self.benchmarks = benchmarks
        self.calibrations = calibrations
        self.fallbacks = fallbacks
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def mlflow_hook(self) -> Any:
        from trt_ops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import register_step

        attempts = pair_attempts(flat_list(self.builds, "builds"),
                                 flat_list(self.validations, "validations"),
                                 flat_list(self.benchmarks, "benchmarks"))
        fallbacks = flat_list(self.fallbacks, "fallbacks")
        attempts += [a for f in fallbacks for a in f["attempts"]]
        calibrations = flat_list(self.calibrations, "calibrations") + \
            [c for f in fallbacks for c in f["calibrations"]]
        if not attempts:
            raise ValueError("register: no engines were built (every target class skipped?); "
                             "choose at least one target class")
        for a in attempts:
            self.log.info("%s/%s: %s %s", a["target"], a["precision"], a["verdict"], a["reason"])
        result = register_step(
            self.pipeline_spec, self.artifact_store(), manifest(self.export, "export"), attempts,
            [manifest(c, "calibrations") for c in calibrations],
            str(context.get("run_id") or ""), connection=self.mlflow_hook.settings)
        info = result.info
        self.log.info("registered %s version %s (%s)", info.get("model_name"), info.get("version"),
                      info.get("model_uri"))
        from airflow.sdk import Asset

        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {
                    k: info.get(k) for k in ("model_name", "version", "model_uri", "aliases")}
        return self.finish(result)
