"""Shared fixtures: the digits example, trained once per session, and one pipeline run of it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from tests.servers import servers  # noqa: F401 - the session's MLflow + moto servers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _blob_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Downloads land in a cache of the session's own, not the user's home."""
    os.environ["TRT_OPS_CACHE_DIR"] = str(tmp_path_factory.mktemp("blob-cache"))


@pytest.fixture(autouse=True)
def _mlflow_globals() -> Iterator[None]:
    """MLflow's process-wide URIs and variables as they were before each test, after it.

    Tests that point MLflow's globals at the session's server must not decide which server a later
    test's client (built without explicit URIs) talks to.
    """
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri,
             fluent._active_experiment_id)
    yield
    (tracking_utils._tracking_uri, registry_utils._registry_uri,
     fluent._active_experiment_id) = saved
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in saved_env:
            del os.environ[key]
    os.environ.update(saved_env)


@pytest.fixture(scope="session")
def local_class() -> str:
    """This machine's class in the target catalog (tests must not assume a CPU model)."""
    from trt_ops.pipeline.steps import default_targets

    return default_targets()[0]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits example folder (model.pt, calibration.npz, validation.npz, pipeline.yaml)."""
    import yaml

    from trt_ops.examples import digits

    folder = tmp_path_factory.mktemp("digits")
    path = digits.prepare(folder)
    # torch.compile's first compilation costs tens of seconds on a cold cache: the tests time it
    # once (tests/core/test_benchmark.py), not in every pipeline run
    doc = yaml.safe_load(path.read_text())
    doc["benchmark"] = {"batch_sizes": [1, 32], "iterations": 20, "warmup": 3,
                        "torch_compile": False}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
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
