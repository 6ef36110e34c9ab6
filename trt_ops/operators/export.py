from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator


class ExportOnnxOperator(TrtOpsBaseOperator):
    """Exports the spec's model to a checked ONNX graph (:func:`trt_ops.pipeline.steps.export_step`)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import export_step

        return self.finish(export_step(self.pipeline_spec, self.artifact_store()))
