from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, flat_list, manifest, trt_template_fields


class PrecisionFallbackOperator(TrtOpsBaseOperator):
    """The spec's precision fallback on one class (:func:`trt_ops.pipeline.steps.fallback_step`):
    for each engine of the class that failed its gate, the next lower precision is calibrated,
    built, validated and benchmarked on this class's worker, until one passes, as ``trt-ops run``
    does. Run it on the class's queue.

    Returns ``{"attempts": [...], "calibrations": [...]}`` for the register task, which records
    why each fallback happened; both are empty when ``fallback`` is off or every engine passed.

    :param target: the hardware class (templated)
    :param builds, validations: the class's build and validate manifests (templated; mapped)
    :param export: the export task's manifest (templated)
    """

    template_fields = trt_template_fields("target", "builds", "validations", "export")
    ui_color = "#fdebd0"

    def __init__(self, *, target: str, builds: Any, validations: Any, export: Any,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.builds = builds
        self.validations = validations
        self.export = export

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.operators.register import pair_attempts
        from trt_ops.pipeline.steps import fallback_step

        spec = self.pipeline_spec
        failed = [a["precision"] for a in pair_attempts(
            flat_list(self.builds, "builds"), flat_list(self.validations, "validations"), [])
            if a["verdict"] == "FAILED"]
        if not failed or not spec.fallback:
            self.log.info("%s: no fallback (%s)", self.target,
                          "fallback is off" if failed else "every engine passed its gate")
            return {"attempts": [], "calibrations": []}
        self.check_worker(self.target)
        attempts, calibrations = [], []
        for precision in failed:
            found, used = fallback_step(spec, self.artifact_store(), manifest(self.export, "export"),
                                        self.target, precision)
            for a in found:
                self.log.info("%s: %s failed, %s %s %s", self.target, a.fallback_from,
                              a.precision, a.verdict, a.reason)
            attempts += [a.to_dict() for a in found]
            calibrations += [c.to_dict() for c in used]
        return {"attempts": attempts, "calibrations": calibrations}
