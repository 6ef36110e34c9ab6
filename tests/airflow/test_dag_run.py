"""The example DAG end to end through ``dag.test()`` on embedded defaults: SQLite metadata,
a file store, onnxruntime on this CPU, MLflow on SQLite through an ``mlflow`` connection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import load_dag_module, xcoms

STAGE_TASKS = ("export", "check_data", "calibrate_onnxruntime")



def run_conf(local_class: str) -> dict[str, Any]:
    """The example on this machine's class; the benchmark short and without torch.compile
    (tests/core times torch.compile), as a user would set it in the trigger form."""
    return {"targets": [local_class], "benchmark_iterations": 5, "benchmark_warmup": 1,
            "benchmark_torch_compile": False}

@pytest.fixture(scope="module")
def dag_env(airflow_db: Path, example_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    mlflow_db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    saved = {k: os.environ.get(k) for k in ("TRT_OPS_EXAMPLE_DIR", "AIRFLOW_CONN_MLFLOW_DEFAULT")}
    cwd = os.getcwd()
    os.chdir(mlflow_db.parent)  # MLflow's default artifact root (./mlruns) lands here
    os.environ["TRT_OPS_EXAMPLE_DIR"] = str(example_folder)
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "mlflow", "host": f"sqlite:///{mlflow_db}"})
    try:
        yield {"mlflow_uri": f"sqlite:///{mlflow_db}", "store": example_folder / "store"}
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def first_run(dag_env: dict[str, Any], local_class: str):
    dag = load_dag_module().dag
    start = time.perf_counter()
    run = dag.test(run_conf=run_conf(local_class))
    return dag, run, time.perf_counter() - start


def _states(run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def test_dag_test_runs_example_end_to_end(first_run, dag_env, local_class):
    _, run, _ = first_run
    states = _states(run)
    assert str(run.state) == "success", states
    assert not [k for k, s in states.items() if s not in ("success", "skipped")], states
    # the chosen class built both precisions; every other class skipped
    built = sorted(m["spec"]["precision"] for m in xcoms(run, f"{local_class}.build"))
    assert built == ["fp16", "int8"]
    others = {k for k, s in states.items() if k[0].endswith(".build") and not k[0].startswith(local_class)}
    assert others and all(states[k] == "skipped" for k in others)
    # no Triton repository in the spec: nothing to publish into; no fallback: no fallback task
    assert states[("publish", -1)] == "skipped"
    assert states[(f"{local_class}.fallback", -1)] == "skipped"
    # the engines are where the manifests say, and passed their gates
    for m in xcoms(run, f"{local_class}.build"):
        uri = m["artifacts"]["engine"]["uri"]
        assert Path(uri.removeprefix("file://")).is_file(), uri
    assert {v["status"] for v in xcoms(run, f"{local_class}.validate")} == {"OK"}
    assert all(b["metrics"] for b in xcoms(run, f"{local_class}.benchmark"))


def test_run_registers_the_engines_in_mlflow_and_emits_the_asset_event(first_run, dag_env):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from mlflow import MlflowClient
    from sqlalchemy import select

    _, run, _ = first_run
    [registered] = xcoms(run, "register")
    info = registered["info"]
    assert info["model_name"] == "digits-cnn"
    client = MlflowClient(tracking_uri=dag_env["mlflow_uri"], registry_uri=dag_env["mlflow_uri"])
    version = client.get_model_version("digits-cnn", str(info["version"]))
    assert version.run_id
    with create_session() as session:
        events = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                 .where(AssetModel.name == "trt_ops_registered_engines",
                                        AssetEvent.source_run_id == run.run_id)).all()
        assert [e.extra.get("version") for e in events] == [info["version"]]
        assert events[0].extra["model_uri"] == info["model_uri"]


def test_engines_carry_this_workers_identity(first_run, local_class):
    from trt_ops.targets.host import host_info

    _, run, _ = first_run
    for task in ("build", "validate", "benchmark"):
        workers = {m["info"]["worker"] for m in xcoms(run, f"{local_class}.{task}")}
        assert workers == {host_info().hostname}, task


def test_rerun_is_all_cache_hits_and_registers_no_new_version(first_run, local_class):
    """Clearing the run's tasks and running them again (a new run of the same params) does no
    work: every stage finds its output in the store, and register finds its version."""
    dag, run, _ = first_run
    again = dag.test(run_conf=run_conf(local_class))
    assert str(again.state) == "success"
    for task in (*STAGE_TASKS, f"{local_class}.build", f"{local_class}.validate",
                 f"{local_class}.benchmark"):
        hits = [m["cache_hit"] for m in xcoms(again, task)]
        assert hits and all(hits), (task, hits)
    assert xcoms(again, "register")[0]["info"]["version"] == xcoms(run, "register")[0]["info"]["version"]


def test_the_dag_and_trt_ops_run_build_the_same_engines(first_run, digits_run, local_class):
    """One pipeline, two doors: the DAG (its own store) and ``trt-ops run`` of the same example
    (another store) end with engines of the same digests, class by class and precision."""
    _, run, _ = first_run
    dag_engines = {(m["spec"]["target"], m["spec"]["precision"]): m["artifacts"]["engine"]["sha256"]
                   for m in xcoms(run, f"{local_class}.build")}
    cli_engines = {(a.target, a.precision): a.build.artifact("engine").sha256
                   for a in digits_run.attempts if a.target == local_class}
    assert dag_engines == cli_engines and len(dag_engines) == 2
