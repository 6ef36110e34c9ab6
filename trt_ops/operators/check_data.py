from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator


class CheckDataOperator(TrtOpsBaseOperator):
    """Checks the spec's calibration and validation data with Great Expectations suites before
    any engine is built (:func:`trt_ops.pipeline.steps.check_data_step`): shapes, dtypes, finite
    values, ranges, labels, duplicates. Fails, listing every failed expectation, when the data
    is bad; the GX Data Docs pages land in the store either way."""

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import check_data_step

        return self.finish(check_data_step(self.pipeline_spec, self.artifact_store()))
