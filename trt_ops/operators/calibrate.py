from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, manifest, trt_template_fields


class CalibrateOperator(TrtOpsBaseOperator):
    """Places Q/DQ nodes (or casts) for one precision and engine backend, with the spec's
    calibration settings (:func:`trt_ops.pipeline.steps.calibrate_step`).

    Runs once per model, precision and backend, on any worker (CPU is enough); map it over
    precisions with ``.expand(precision=...)``.

    :param export: the export task's manifest (templated; an XComArg)
    :param precision: ``int8``, ``fp8``, ``fp16``, ``bf16`` or ``fp32`` (templated)
    :param backend: ``onnxruntime`` or ``tensorrt`` (templated)
    """

    template_fields = trt_template_fields("export", "precision", "backend")

    def __init__(self, *, export: Any, precision: str, backend: str = "onnxruntime",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export
        self.precision = precision
        self.backend = backend

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import calibrate_step

        return self.finish(calibrate_step(self.pipeline_spec, self.artifact_store(),
                                          manifest(self.export, "export"), str(self.precision),
                                          str(self.backend)))
