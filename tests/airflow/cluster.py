"""A distributed Airflow on this machine, for the distributed test and the Celery benchmark:
CeleryExecutor with metadata in PostgreSQL and a Redis broker; the scheduler, API server, DAG
processor and Celery workers as processes of their own, each in its own process group and
stopped at the end (also on failure). Two catalog classes, both this machine's CPU, each with its
queue, pool and worker.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_DB = 11
DAG_ID = "trt_engine_pipeline"
CLASSES = {"cpu-a": ("cpu-a", "pool_a", "worker-a"), "cpu-b": ("cpu-b", "pool_b", "worker-b")}


def reachable(host: str, port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg(dbname: str = "postgres") -> Any:
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, **PG)
    conn.autocommit = True
    return conn


def redis_db() -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)


class Services:
    """Processes of this test, each in its own process group, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, *args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        proc = subprocess.Popen([sys.executable, "-m", "airflow", *args], cwd=cwd or self.logs,
                                env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
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


def catalog_yaml() -> str:
    from trt_ops.targets.host import host_info

    isa = host_info().cpu_isa
    classes = {name: {"description": f"this machine's CPU, served by {worker}",
                      "backend": "onnxruntime", "cpu_isa": isa, "queue": queue, "pool": pool}
               for name, (queue, pool, worker) in CLASSES.items()}
    return yaml.safe_dump({"classes": classes})


def query(db: str, sql: str, *args: Any) -> list[tuple]:
    with closing(pg(db)) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def run_airflow(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def wait(what: str, until: Any, services: Services, timeout: float, poll: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        value = until()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(
        f"--- {name}\n{services.tail(name, 15)}" for name, _, _ in services.procs))




@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database and Redis db of this process's own, dropped afterwards."""
    name = f"trt_ops_airflow_{os.getpid()}"
    with closing(pg()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    redis_db().flushdb()
    try:
        yield name
    finally:
        redis_db().flushdb()
        with closing(pg()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def airflow_env(base: dict[str, str], home: Path, database: str, api_port: int) -> dict[str, str]:
    """The settings every process of the cluster shares: executor, database, broker, API."""
    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
            f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND":
            f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # an idle scheduler looks again after 0.25 s, not 1 s: each task of the run's chain
        # waits for the scheduler's next look once its upstream ends
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
        # as the chart sets it: a worker slot is free within a second of its task's end
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
    }


def start_control_plane(services: Services, env: dict[str, str], api_port: int,
                        database: str) -> None:
    """Migrates the database, creates the classes' pools, starts the API server, scheduler and
    DAG processor, and waits until the DAGs are serialized."""
    run_airflow(env, "db", "migrate")
    for _, pool, worker in CLASSES.values():
        run_airflow(env, "pools", "set", pool, "2", f"engines built by {worker}")
    services.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
    services.start("scheduler", "scheduler")
    services.start("dag-processor", "dag-processor")
    wait("the DAG processor to serialize the DAGs", lambda: len(query(
        database, "SELECT dag_id FROM serialized_dag")) >= 2, services, 90)


def finished_run(database: str, services: Services, timeout: float,
                 dag_id: str = DAG_ID) -> str:
    """The state of the DAG's run once it is success or failed."""
    return wait(f"the {dag_id} run to finish", lambda: next(iter(
        s for (s,) in query(database, "SELECT state FROM dag_run WHERE dag_id=%s", dag_id)
        if s in ("success", "failed")), None), services, timeout)
