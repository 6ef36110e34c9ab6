from __future__ import annotations

from typing import Any

from trt_ops.operators.base import (
    TrtOpsBaseOperator,
    manifest,
    no_retry_on_mismatch,
    trt_template_fields,
)


class BuildEngineOperator(TrtOpsBaseOperator):
    """Builds the engine of one target class with the spec's shape profile and builder options
    (:func:`trt_ops.pipeline.steps.build_step`).

    Run it on the class's queue: before any work the task checks that the worker's GPU (or CPU
    class) is the one the target names, and otherwise fails, without retrying, with an error
    naming both.

    :param calibrated: the calibrate task's manifest (templated; an XComArg, or mapped)
    :param target: the catalog class, e.g. ``h100`` (templated)
    """

    template_fields = trt_template_fields("calibrated", "target")

    def __init__(self, *, calibrated: Any, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calibrated = calibrated
        self.target = target

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import build_step

        with no_retry_on_mismatch():  # the build stage checks the worker before any work
            result = build_step(self.pipeline_spec, self.artifact_store(),
                                manifest(self.calibrated, "calibrated"), str(self.target))
        return self.finish(result)
