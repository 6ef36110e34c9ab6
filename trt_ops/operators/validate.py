from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, manifest, trt_template_fields


class ValidateEngineOperator(TrtOpsBaseOperator):
    """Runs an engine on the spec's validation data against the FP32 reference and applies the
    spec's accuracy gate for its precision (:func:`trt_ops.pipeline.steps.validate_step`). Run it
    on the engine's class queue: on a worker of another GPU (or CPU class) it fails before any
    work, naming both.

    The manifest's status is FAIL when the gate fails; the task then still succeeds (the
    register task records the failed verdict and registers only passing engines) unless
    ``fail_on_gate`` is set.

    :param engine: the build task's manifest (templated; an XComArg, or mapped)
    :param export: the export task's manifest (templated)
    :param fail_on_gate: fail the task when the gate fails
    """

    template_fields = trt_template_fields("engine", "export")

    def __init__(self, *, engine: Any, export: Any, fail_on_gate: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.export = export
        self.fail_on_gate = fail_on_gate

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import validate_step
        from trt_ops.stages.validate import verdict_lines
        from trt_ops.store.manifest import Status

        engine = manifest(self.engine, "engine")
        self.check_worker(engine.spec["target"])
        result = validate_step(self.pipeline_spec, self.artifact_store(), engine,
                               manifest(self.export, "export"))
        where = f"{engine.spec['target']}/{engine.spec['precision']}"
        for line in verdict_lines(result):
            self.log.info("%s %s", where, line)
        if self.fail_on_gate and result.status == Status.FAIL:
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(f"engine {where} failed its accuracy gate (see the FAILED "
                                   "lines above)")
        return self.finish(result)
