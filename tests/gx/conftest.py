"""Fixtures for the data-check and gate tests: the digits sets as arrays, and writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_ops.spec import InputSpec


@pytest.fixture
def inputs() -> tuple[InputSpec, ...]:
    """The digits model's one input."""
    return (InputSpec(name="image", shape=[1, 1, 8, 8], dtype="float32"),)


@pytest.fixture
def digits_arrays(digits_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fresh copies of the calibration and validation arrays, to spoil in a test."""
    with np.load(digits_dir / "calibration.npz") as c, np.load(digits_dir / "validation.npz") as v:
        return {k: c[k].copy() for k in c.files}, {k: v[k].copy() for k in v.files}


@pytest.fixture
def write_sets(tmp_path: Path):
    """Writes (calibration, validation) arrays as .npz files; returns their paths."""
    def write(calibration: dict[str, np.ndarray], validation: dict[str, np.ndarray]):
        np.savez(tmp_path / "calibration.npz", **calibration)
        np.savez(tmp_path / "validation.npz", **validation)
        return tmp_path / "calibration.npz", tmp_path / "validation.npz"
    return write
