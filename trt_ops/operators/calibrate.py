from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, as_inputs, manifest, trt_template_fields


class CalibrateOperator(TrtOpsBaseOperator):
    """Places Q/DQ nodes for one precision and engine backend (:func:`trt_ops.calibrate.calibrate`).

    Runs once per model, precision and backend, on any worker (CPU is enough); map it over
    precisions with ``.expand(precision=...)``.

    :param export: the export task's manifest (templated; an XComArg)
    :param calibration_data: URI of the calibration data (.npz/.npy) (templated)
    :param inputs: the model inputs, as for the export (templated)
    :param precision: ``int8``, ``fp8``, ``fp16``, ``bf16`` or ``fp32`` (templated)
    :param backend: ``onnxruntime`` or ``tensorrt`` (templated)
    :param samples: calibration samples to use (templated)
    :param method: ``entropy`` or ``max`` (templated)
    """

    template_fields = trt_template_fields("export", "calibration_data", "inputs", "precision",
                                          "backend", "samples", "method")

    def __init__(self, *, export: Any, calibration_data: str, inputs: Any, precision: str,
                 backend: str = "onnxruntime", samples: int | str = 512, method: str = "entropy",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export = export
        self.calibration_data = calibration_data
        self.inputs = inputs
        self.precision = precision
        self.backend = backend
        self.samples = samples
        self.method = method

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.calibrate import calibrate

        result = calibrate(manifest(self.export, "export"), str(self.calibration_data),
                           as_inputs(self.inputs), str(self.precision), str(self.backend),
                           self.artifact_store(), samples=int(self.samples), method=str(self.method))
        return self.finish(result)
