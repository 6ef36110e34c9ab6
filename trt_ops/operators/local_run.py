"""Running a DAG file on this machine with ``dag.test()``, and reading what its tasks returned.

Used by the README's main job (``make example``) and the tests: Airflow on embedded defaults,
every task in this process, the task's XCom values read back from the metadata database.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def load_dag(path: str | Path, name: str | None = None) -> Any:
    """The ``dag`` of a DAG file, imported as a module of its own."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import DAG file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xcom_values(run: Any, task_id: str) -> list[Any]:
    """The return values of one task of a DAG run, by map index."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.task_id == task_id, XComModel.key == "return_value",
        ).order_by(XComModel.map_index)).all()
        return [XComModel.deserialize_value(r) for r in rows]
