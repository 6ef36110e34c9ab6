from __future__ import annotations

from typing import Any

from trt_ops.operators.base import (
    TrtOpsBaseOperator,
    manifest,
    native,
    no_retry_on_mismatch,
    trt_template_fields,
)


class BuildEngineOperator(TrtOpsBaseOperator):
    """Builds the engine of one target class (:func:`trt_ops.build.build_engine`).

    Run it on the class's queue: before any work the task checks that the worker's GPU (or CPU
    class) is the one the target names, and otherwise fails, without retrying, with an error
    naming both.

    :param calibrated: the calibrate task's manifest (templated; an XComArg, or mapped)
    :param target: the catalog class, e.g. ``h100`` (templated)
    :param profile: ``{input: {"min", "opt", "max"}}`` shapes (templated)
    :param options: builder options of the class's backend (templated)
    :param catalog: the target catalog file; default ``$TRT_OPS_TARGETS`` or the built-in one
    """

    template_fields = trt_template_fields("calibrated", "target", "profile", "options")

    def __init__(self, *, calibrated: Any, target: str, profile: Any, options: Any = None,
                 catalog: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calibrated = calibrated
        self.target = target
        self.profile = profile
        self.options = options
        self.catalog = catalog

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.build import build_engine

        with no_retry_on_mismatch():  # build_engine checks the worker before any work
            result = build_engine(manifest(self.calibrated, "calibrated"), str(self.target),
                                  self.artifact_store(), profile=native(self.profile, "profile"),
                                  options=native(self.options, "options") or {},
                                  catalog=self.catalog)
        return self.finish(result)
