"""Running a Great Expectations suite over a pandas frame, in an ephemeral context."""

from __future__ import annotations

from typing import Any

import pandas as pd


def run_suite(frame: pd.DataFrame, expectations: list[Any], name: str) -> Any:
    """Validates ``frame`` against ``expectations`` in an ephemeral GX context; the GX result."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # one INFO line per context
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas(name).add_dataframe_asset("frame")
             .add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if "sample" in frame:  # failures then name their samples
        result_format["unexpected_index_column_names"] = ["sample"]
    return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
