"""Data sources: Parquet files and data in the artifact store (s3:// through moto, file://)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_ops.data.datasets import load_dataset
from trt_ops.data.parquet import write_parquet
from trt_ops.errors import DataError
from trt_ops.quality.data_suites import check_datasets


def test_parquet_round_trip_and_checks(digits_arrays, inputs, tmp_path: Path) -> None:
    calibration, validation = digits_arrays
    cal = write_parquet(tmp_path / "calibration.parquet", calibration)
    val = write_parquet(tmp_path / "validation.parquet", validation)
    data = load_dataset(val, inputs, "validation")
    np.testing.assert_array_equal(data.arrays["image"], validation["image"])
    np.testing.assert_array_equal(data.labels, validation["labels"])
    assert check_datasets(cal, val, inputs).passed


def test_data_from_s3_and_file_uris(digits_dir: Path, inputs, monkeypatch) -> None:
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TRT_OPS_S3_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data")
        s3.upload_file(str(digits_dir / "validation.npz"), "data", "sets/validation.npz")
        data = load_dataset("s3://data/sets/validation.npz", inputs, "validation")
        assert len(data) == 360 and data.labels is not None
        assert check_datasets((digits_dir / "calibration.npz").as_uri(),
                              "s3://data/sets/validation.npz", inputs).passed
        with pytest.raises(DataError, match="s3://data/sets/missing.npz does not exist"):
            load_dataset("s3://data/sets/missing.npz", inputs, "validation")
