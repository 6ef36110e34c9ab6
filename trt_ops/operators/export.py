from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, as_inputs, native, trt_template_fields


class ExportOnnxOperator(TrtOpsBaseOperator):
    """Exports a PyTorch model to a checked ONNX graph (:func:`trt_ops.export.export_onnx`).

    :param source: the model source: ``{"factory": "pkg.mod:fn", "state_dict": URI}``,
        ``{"program": URI}`` or ``{"registered": "models:/name/version"}``; empty values are
        dropped (templated)
    :param inputs: ``[{"name", "shape", "dtype"}]``, the batch axis first (templated)
    :param output_names: names of the model's outputs (templated)
    :param tolerance: ``{"atol", "rtol"}`` of the ONNX-vs-PyTorch check (templated)
    """

    template_fields = trt_template_fields("source", "inputs", "output_names", "tolerance")

    def __init__(self, *, source: dict[str, Any] | str, inputs: list[dict[str, Any]] | str,
                 output_names: Sequence[str] | str = (), tolerance: dict[str, float] | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.inputs = inputs
        self.output_names = output_names
        self.tolerance = tolerance

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.export import export_onnx

        source = {k: v for k, v in dict(native(self.source, "source")).items() if v not in (None, "")}
        result = export_onnx(source, as_inputs(self.inputs), self.artifact_store(),
                             output_names=list(native(self.output_names, "output_names") or ()),
                             tolerance=native(self.tolerance, "tolerance") or None)
        return self.finish(result)
