"""Airflow test setup: a metadata database and AIRFLOW_HOME of the session's own.

Airflow reads its configuration when first imported, so the environment is set here, when
pytest loads this file, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PIPELINE_DAG = DAGS / "trt_engine_pipeline.py"

_HOME = Path(tempfile.mkdtemp(prefix="trt-ops-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


def airflow_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` once for the session (SQLite in the session's AIRFLOW_HOME)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True, env=airflow_env())
    return _HOME


def load_dag_module(path: Path = PIPELINE_DAG, name: str | None = None) -> Any:
    from trt_ops.operators.local_run import load_dag

    return load_dag(path, name)


def xcoms(run: Any, task_id: str) -> list[Any]:
    from trt_ops.operators.local_run import xcom_values

    return xcom_values(run, task_id)


@pytest.fixture(scope="session")
def example_folder(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits example with a store of its own (the DAG's embedded defaults point here)."""
    folder = tmp_path_factory.mktemp("dag-example") / "digits"
    shutil.copytree(digits_dir, folder, ignore=shutil.ignore_patterns("store"))
    return folder
