"""The example DAG on a real distributed Airflow: CeleryExecutor, metadata in PostgreSQL, a
Redis broker, and the scheduler, API server (execution API), DAG processor and two Celery
workers started here, each serving the queue of one catalog class.

Both classes are CPU classes of this machine's own instruction set (one machine, no GPU), so
both builds are real; what tells the workers apart is their Celery name, which each worker
also exports as ``TRT_OPS_WORKER_NAME`` and which the stages record in their manifests.
Everything started here runs in its own process group and is stopped at the end, also on
failure. Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import DAGS, REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_DB = 11
DAG_ID = "trt_engine_pipeline"
TIMEOUT = 210  # seconds for the whole run once triggered
CLASSES = {"cpu-a": ("cpu-a", "pool_a", "worker-a"), "cpu-b": ("cpu-b", "pool_b", "worker-b")}


def _reachable(host: str, port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg(dbname: str = "postgres") -> Any:
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **PG)
    conn.autocommit = True
    return conn


def _redis() -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)


class Services:
    """Processes of this test, each in its own process group, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        proc = subprocess.Popen([sys.executable, "-m", "airflow", *args], cwd=self.logs,
                                env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc, log in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            for_group_leftovers(proc.pid)
            log.close()


def for_group_leftovers(pgid: int) -> None:
    """Children that outlived their group leader (task processes) are killed too."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def database() -> Iterator[str]:
    if not (_reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
    name = f"trt_ops_airflow_{os.getpid()}"
    with closing(_pg()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    _redis().flushdb()
    try:
        yield name
    finally:
        _redis().flushdb()
        with closing(_pg()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _catalog(path: Path) -> Path:
    from trt_ops.targets.host import host_info

    isa = host_info().cpu_isa
    classes = {name: {"description": f"this machine's CPU, served by {worker}",
                      "backend": "onnxruntime", "cpu_isa": isa, "queue": queue, "pool": pool}
               for name, (queue, pool, worker) in CLASSES.items()}
    import yaml

    path.write_text(yaml.safe_dump({"classes": classes}))
    return path


def _query(db: str, sql: str, *args: Any) -> list[tuple]:
    with closing(_pg(db)) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def _run(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _wait(what: str, until: Any, services: Services, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        value = until()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(
        f"--- {name}\n{services.tail(name, 15)}" for name, _, _ in services.procs))


def test_celery_workers_each_build_their_own_class_and_the_run_registers(
        database: str, example_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "logs").mkdir(parents=True)
    api_port = _free_port()
    jwt = secrets.token_urlsafe(32)
    db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "TRT_OPS_TARGETS": str(_catalog(tmp_path / "catalog.yaml")),
        "TRT_OPS_EXAMPLE_DIR": str(example_folder),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
            {"conn_type": "mlflow", "host": f"sqlite:///{tmp_path / 'mlflow.db'}"}),
        "GX_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
    }
    store = tmp_path / "store"
    _run(env, "db", "migrate")
    for _, pool, worker in CLASSES.values():
        _run(env, "pools", "set", pool, "2", f"engines built by {worker}")

    services = Services(env, tmp_path)
    with ExitStack() as stack:
        stack.callback(services.stop)
        services.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
        services.start("scheduler", "scheduler")
        services.start("dag-processor", "dag-processor")
        (queue_a, _, worker_a), (queue_b, _, worker_b) = CLASSES.values()
        services.start(worker_a, "celery", "worker", "-q", f"{queue_a},default", "-H",
                       f"{worker_a}@%h", "--skip-serve-logs", TRT_OPS_WORKER_NAME=worker_a)
        services.start(worker_b, "celery", "worker", "-q", queue_b, "-H", f"{worker_b}@%h",
                       "--skip-serve-logs", TRT_OPS_WORKER_NAME=worker_b)

        _wait("the DAG processor to serialize the DAGs", lambda: len(_query(
            database, "SELECT dag_id FROM serialized_dag")) >= 2, services, 90)
        conf = {"targets": list(CLASSES), "store": str(store), "benchmark_iterations": 10,
                "benchmark_torch_compile": False,
                "benchmark_warmup": 2}
        _run(env, "dags", "trigger", DAG_ID, "--run-id", "distributed", "--conf", json.dumps(conf))
        state = _wait("the DAG run to finish", lambda: next(iter(
            s for (s,) in _query(database, "SELECT state FROM dag_run WHERE dag_id=%s", DAG_ID)
            if s in ("success", "failed")), None), services, TIMEOUT)
        tis = _query(database, "SELECT task_id, map_index, state, queue, pool FROM task_instance "
                     "WHERE dag_id=%s AND run_id='distributed'", DAG_ID)
        assert state == "success", "\n".join(map(str, sorted(tis))) + "\n" + services.tail(worker_a)
        consumer = _wait("the consumer DAG run, scheduled on the Asset", lambda: next(iter(
            s for (s,) in _query(database, "SELECT state FROM dag_run WHERE dag_id=%s",
                                 "trt_engine_consumer") if s in ("success", "failed")), None),
            services, 60)

    xcom = {(t, m): v for t, m, v in _query(
        database, "SELECT task_id, map_index, value FROM xcom WHERE dag_id=%s AND "
        "run_id='distributed' AND key='return_value'", DAG_ID)}
    xcom = {k: json.loads(v) if isinstance(v, str) else v for k, v in xcom.items()}
    for name, (queue, pool, worker) in CLASSES.items():
        for task in ("build", "validate", "benchmark"):
            rows = [r for r in tis if r[0] == f"{name}.{task}"]
            assert len(rows) == 2 and {r[2:] for r in rows} == {("success", queue, pool)}, rows
            manifests = [xcom[(f"{name}.{task}", m)] for m in (0, 1)]
            assert {m["info"]["worker"] for m in manifests} == {worker}, (name, task)
        assert sorted(m["spec"]["precision"] for m in
                      (xcom[(f"{name}.build", i)] for i in (0, 1))) == ["fp16", "int8"]

    registered = xcom[("register", -1)]
    assert registered["status"] == "OK" and registered["info"]["version"]
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = MlflowClient(uri, uri).get_model_version("digits-cnn", str(registered["info"]["version"]))
    assert version.status == "READY"
    assert consumer == "success"
