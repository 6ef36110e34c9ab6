"""Calibration and validation data: each kind of bad input gets its own clear error."""

from __future__ import annotations

import numpy as np
import pytest

from trt_ops.data.datasets import load_dataset
from trt_ops.errors import DataError
from trt_ops.spec import InputSpec

IMAGE = (InputSpec(name="image", shape=[1, 1, 8, 8]),)


def save(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def good(n=10):
    return np.random.default_rng(0).random((n, 1, 8, 8), dtype=np.float32)


def test_good_data_loads_with_labels(tmp_path):
    ds = load_dataset(save(tmp_path, image=good(), labels=np.arange(10)), IMAGE, "validation")
    assert len(ds) == 10 and ds.labels is not None and len(ds.sha256) == 64


def test_single_array_npy_for_single_input_model(tmp_path):
    np.save(tmp_path / "calib.npy", good())
    assert len(load_dataset(tmp_path / "calib.npy", IMAGE, "calibration")) == 10


@pytest.mark.parametrize("arrays, message, fix", [
    ({"image": good()[:, :, :4]}, r"samples of shape \(1, 4, 8\), the model expects \(1, 8, 8\)",
     "reshape"),
    ({"image": good().astype(np.float64)}, "is float64, the model expects float32", "astype"),
    ({"image": np.zeros((0, 1, 8, 8), np.float32)}, "is empty", "at least one sample"),
    ({"pixels": good()}, r"lacks arrays for inputs \['image'\]", "named"),
    ({"image": good(), "extra": good()}, r"arrays \['extra'\] that are not model inputs", "keep only"),
    ({"image": good(), "labels": np.arange(3)}, "3 labels for 10 samples", "one label per sample"),
])
def test_bad_data_is_named(tmp_path, arrays, message, fix):
    with pytest.raises(DataError, match=message) as exc:
        load_dataset(save(tmp_path, **arrays), IMAGE, "calibration")
    assert fix in exc.value.fix


def test_nan_and_inf_name_the_samples(tmp_path):
    x = good()
    x[3, 0, 0, 0] = np.nan
    x[7, 0, 1, 1] = np.inf
    with pytest.raises(DataError, match=r"NaN or Inf in 2 of 10 samples \(first: \[3, 7\]\)"):
        load_dataset(save(tmp_path, image=x), IMAGE, "calibration")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz", IMAGE, "calibration")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="unsupported data file x.csv"):
        load_dataset(tmp_path / "x.csv", IMAGE, "calibration")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="is not a zip archive"):
        load_dataset(tmp_path / "broken.npz", IMAGE, "calibration")
