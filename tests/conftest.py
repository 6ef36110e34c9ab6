"""Shared fixtures: the digits example, trained once per session, and one pipeline run of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _blob_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Downloads land in a cache of the session's own, not the user's home."""
    os.environ["TRT_OPS_CACHE_DIR"] = str(tmp_path_factory.mktemp("blob-cache"))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits example folder (model.pt, calibration.npz, validation.npz, pipeline.yaml)."""
    from trt_ops.examples import digits

    folder = tmp_path_factory.mktemp("digits")
    digits.prepare(folder)
    return folder


@pytest.fixture
def digits_copy(digits_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the example folder (its own store), for tests that change it."""
    folder = tmp_path / "digits"
    shutil.copytree(digits_dir, folder, ignore=shutil.ignore_patterns("store"))
    return folder


@pytest.fixture(scope="session")
def digits_run(digits_dir: Path):
    """One full pipeline run of the example (int8 and fp16 on this CPU's class)."""
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    return run_pipeline(load_spec(digits_dir / "pipeline.yaml"))
