from __future__ import annotations

from typing import Any

from trt_ops.operators.base import (
    TrtOpsBaseOperator,
    as_inputs,
    manifest,
    native,
    trt_template_fields,
)


def thresholds_for(thresholds: Any, precision: str) -> dict[str, float]:
    """The gate of one precision: the defaults, updated with ``thresholds`` given either per
    precision (``{"int8": {"top1_agreement": 0.98}}``) or flat (``{"top1_agreement": 0.98}``)."""
    from trt_ops.spec import DEFAULT_THRESHOLDS

    given = dict(native(thresholds, "thresholds") or {})
    if any(isinstance(v, dict) for v in given.values()):
        given = dict(given.get(precision) or {})
    return {**DEFAULT_THRESHOLDS.get(precision, {}), **{k: float(v) for k, v in given.items()}}


class ValidateEngineOperator(TrtOpsBaseOperator):
    """Runs an engine on the validation data against the FP32 reference and applies the accuracy
    gate (:func:`trt_ops.validate.validate_engine`). Run it on the engine's class queue: on a
    worker of another GPU (or CPU class) it fails before any work, naming both.

    The manifest's status is FAIL when the gate fails; the task then still succeeds (the
    register task records the failed verdict and registers only passing engines) unless
    ``fail_on_gate`` is set.

    :param engine: the build task's manifest (templated; an XComArg, or mapped)
    :param export: the export task's manifest (templated)
    :param validation_data: URI of the validation data, labels optional (templated)
    :param inputs: the model inputs (templated)
    :param task: ``classification``, ``embedding`` or ``regression`` (templated)
    :param thresholds: gate thresholds, per precision or flat, over the defaults (templated)
    :param fail_on_gate: fail the task when the gate fails
    """

    template_fields = trt_template_fields("engine", "export", "validation_data", "inputs", "task",
                                          "thresholds")

    def __init__(self, *, engine: Any, export: Any, validation_data: str, inputs: Any,
                 task: str = "classification", thresholds: Any = None, fail_on_gate: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.export = export
        self.validation_data = validation_data
        self.inputs = inputs
        self.task = task
        self.thresholds = thresholds
        self.fail_on_gate = fail_on_gate

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.manifest import Status
        from trt_ops.validate import validate_engine, verdict_lines

        engine = manifest(self.engine, "engine")
        self.check_worker(engine.spec["target"])
        gate = thresholds_for(native(self.thresholds, "thresholds"), engine.spec["precision"])
        result = validate_engine(engine, manifest(self.export, "export"), str(self.validation_data),
                                 as_inputs(self.inputs), self.artifact_store(), task=str(self.task),
                                 thresholds=gate)
        for line in verdict_lines(result):
            self.log.info("%s/%s %s", engine.spec["target"], engine.spec["precision"], line)
        if self.fail_on_gate and result.status == Status.FAIL:
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(f"engine {engine.spec['target']}/{engine.spec['precision']} "
                                   "failed its accuracy gate (see the FAILED lines above)")
        return self.finish(result)
