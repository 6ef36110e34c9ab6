from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, as_inputs, native, trt_template_fields


class CheckDataOperator(TrtOpsBaseOperator):
    """Checks the calibration and validation data with Great Expectations suites before any
    engine is built (:func:`trt_ops.data_checks.check_data`): shapes, dtypes, finite values,
    ranges, labels, duplicates. Fails, listing every failed expectation, when the data is bad;
    the GX Data Docs pages land in the store either way.

    :param calibration_data: URI of the calibration data (templated)
    :param validation_data: URI of the validation data (templated)
    :param inputs: the model inputs (templated)
    :param ranges: ``{input: [min, max]}`` allowed values; default derived from calibration (templated)
    :param min_samples: fewest samples each set must have (templated)
    :param classes: number of classes the labels may take (templated)
    """

    template_fields = trt_template_fields("calibration_data", "validation_data", "inputs",
                                          "ranges", "min_samples", "classes")

    def __init__(self, *, calibration_data: str, validation_data: str, inputs: Any,
                 ranges: Any = None, min_samples: int | str = 100, classes: int | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calibration_data = calibration_data
        self.validation_data = validation_data
        self.inputs = inputs
        self.ranges = ranges
        self.min_samples = min_samples
        self.classes = classes

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.data_checks import check_data

        ranges = native(self.ranges, "ranges") or None
        classes = native(self.classes, "classes")
        result = check_data(str(self.calibration_data), str(self.validation_data),
                            as_inputs(self.inputs), self.artifact_store(),
                            ranges={k: tuple(v) for k, v in ranges.items()} if ranges else None,
                            min_samples=int(self.min_samples),
                            classes=int(classes) if classes not in (None, "") else None)
        return self.finish(result)
