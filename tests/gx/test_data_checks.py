"""Data checks: good data passes; each kind of bad data fails with its expectation named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from trt_ops.errors import DataError
from trt_ops.quality.data_suites import check_datasets


def test_good_data_passes_and_writes_data_docs(digits_dir: Path, tmp_path: Path, inputs) -> None:
    result = check_datasets(digits_dir / "calibration.npz", digits_dir / "validation.npz", inputs,
                            report_dir=tmp_path)
    assert result.passed, result.failures
    assert result.samples == {"calibration": 1437, "validation": 360}
    page = result.reports["validation"].read_text()
    assert "expect_column_values_to_be_in_set" in page or "values must belong to this set" in page
    assert "in_calibration" in page and "image__shape" in page


def _spoil_shape(c, v):
    v["image"] = v["image"][:, 0]  # (N, 8, 8): the channel axis lost


def _spoil_dtype(c, v):
    v["image"] = v["image"].astype(np.float64)


def _spoil_nan(c, v):
    v["image"][[5, 17], 0, 3, 3] = [np.nan, np.inf]


def _spoil_range(c, v):
    v["image"][7] *= 10.0  # one sample scaled 0..10 where calibration saw 0..1


def _spoil_count(c, v):
    v["image"], v["labels"] = v["image"][:50], v["labels"][:50]


def _spoil_classes(c, v):
    keep = v["labels"] != 3
    v["image"], v["labels"] = v["image"][keep], v["labels"][keep]


def _spoil_overlap(c, v):
    v["image"][:4] = c["image"][100:104]


@pytest.mark.parametrize("spoil, expectation, detail", [
    (_spoil_shape, "expect_column_values_to_match_regex(image__shape)", "360 of 360 samples"),
    (_spoil_dtype, "expect_column_values_to_be_in_set(image__dtype)", "float64"),
    (_spoil_nan, "expect_column_values_to_be_in_set(image__finite)", "samples [5, 17]"),
    (_spoil_range, "expect_column_values_to_be_between(image__max)", "samples [7]"),
    (_spoil_count, "expect_table_row_count_to_be_between", "observed 50"),
    (_spoil_classes, "expect_column_distinct_values_to_contain_set(label)", "missing [3]"),
    (_spoil_overlap, "expect_column_values_to_be_in_set(in_calibration)", "samples [0, 1, 2, 3]"),
], ids=["shape", "dtype", "nan-inf", "range", "count", "classes", "overlap"])
def test_bad_data_fails_naming_its_expectation(digits_arrays, write_sets, inputs, spoil,
                                               expectation, detail) -> None:
    calibration, validation = digits_arrays
    spoil(calibration, validation)
    result = check_datasets(*write_sets(calibration, validation), inputs)
    assert not result.passed
    named = [f for f in result.failures if f.startswith(f"validation: {expectation}:")]
    assert named, result.failures
    assert detail in named[0] and "fix: " in named[0]


def test_spec_ranges_apply_to_both_sets(digits_dir: Path, inputs) -> None:
    result = check_datasets(digits_dir / "calibration.npz", digits_dir / "validation.npz", inputs,
                            ranges={"image": (0.0, 0.5)})
    roles = {f.split(":")[0] for f in result.failures
             if "expect_column_values_to_be_between(image__max)" in f}
    assert roles == {"calibration", "validation"}


def test_pipeline_stops_before_export_and_keeps_the_data_docs(digits_copy: Path) -> None:
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    with np.load(digits_copy / "validation.npz") as z:
        v = {k: z[k].copy() for k in z.files}
    v["image"][9, 0, 0, 0] = np.nan
    np.savez(digits_copy / "validation.npz", **v)
    with pytest.raises(DataError) as err:
        run_pipeline(load_spec(digits_copy / "pipeline.yaml"))
    assert "validation: expect_column_values_to_be_in_set(image__finite)" in err.value.problem
    assert "samples [9]" in err.value.problem and "validation_data_docs.html" in err.value.fix
    store = digits_copy / "store"
    assert not (store / "export").exists() and not (store / "build").exists()
    (run,) = (store / "runs").iterdir()
    steps = yaml.safe_load((run / "run.yaml").read_text())["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [("check_data", "FAIL")]
    assert list(store.glob("check_data/*/*/validation_data_docs.html"))  # key/sha256/name


def test_check_data_is_a_cached_stage(digits_run) -> None:
    m = digits_run.data_check
    assert m.stage == "check_data" and m.metrics["validation_samples"] == 360
    assert {"calibration_data_docs", "validation_data_docs"} <= set(m.artifacts)
