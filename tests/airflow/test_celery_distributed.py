"""The example DAG on a real distributed Airflow whose workers share only what production
workers share: S3 (moto over HTTP), MLflow (a real server, artifacts proxied to S3) and Airflow's
database (PostgreSQL) and broker (Redis).

The scheduler, API server, DAG processor and two Celery workers are started here, one worker per
catalog class. Each worker runs in an empty folder of its own, with its own HOME, TMPDIR, cache
and copy of the catalog (as a ConfigMap would mount it), and no S3 or MLflow settings in its
environment: only the ``aws`` and ``mlflow`` connections. The example's weights, data and spec
are on S3 only. An audit hook in every worker process records any file opened under the test
session's folder but outside the worker's own; there must be none. Mid-run, one worker is
killed with SIGKILL while it builds; Airflow's retry finishes on a replacement worker and one
model version is registered.

Both classes are CPU classes of this machine's own instruction set (one machine, no GPU), so
both builds are real; what tells the workers apart is their name (``TRT_OPS_WORKER_NAME``),
which the stages record in their manifests. Needs PostgreSQL on 127.0.0.1:5432 and Redis on
127.0.0.1:6379.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
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
import yaml

from tests.airflow.conftest import DAGS, REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_DB = 11
DAG_ID = "trt_engine_pipeline"
TIMEOUT = 360  # seconds for the whole run once triggered, a retry included
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


def _catalog_yaml() -> str:
    from trt_ops.targets.host import host_info

    isa = host_info().cpu_isa
    classes = {name: {"description": f"this machine's CPU, served by {worker}",
                      "backend": "onnxruntime", "cpu_isa": isa, "queue": queue, "pool": pool}
               for name, (queue, pool, worker) in CLASSES.items()}
    return yaml.safe_dump({"classes": classes})


def _query(db: str, sql: str, *args: Any) -> list[tuple]:
    with closing(_pg(db)) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def _run(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _wait(what: str, until: Any, services: Services, timeout: float, poll: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        value = until()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(
        f"--- {name}\n{services.tail(name, 15)}" for name, _, _ in services.procs))


AUDIT = Path(__file__).resolve().parent / "audit"
SHARED_ENV = ("AIRFLOW", "AWS_", "MLFLOW_", "TRT_OPS_")  # none of these reaches a worker


@pytest.fixture
def mlflow_server(servers, tmp_path: Path) -> Iterator[str]:
    """A real MLflow server whose artifacts it proxies to S3: clients need no S3 credentials."""
    from tests.servers import VENV_BIN, _stop, _wait_http, free_port

    port, folder = free_port(), tmp_path / "mlflow-server"
    folder.mkdir()
    log = folder / "mlflow.log"
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{folder / 'mlflow.db'}", "--serve-artifacts", "--artifacts-destination",
         f"s3://{servers.bucket}/{folder.parent.name}/mlflow", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=folder)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc, log, seconds=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _spec_on_s3(servers, digits_dir: Path, staging: Path, mlflow_uri: str) -> str:
    """The example's weights, data and spec uploaded to S3; the local copies deleted."""
    from trt_ops.examples.digits import spec_document

    prefix = f"{staging.parent.name}/inputs"
    s3 = servers.s3()
    shutil.copytree(digits_dir, staging, ignore=shutil.ignore_patterns("store"))
    uri = {}
    for name in ("model.pt", "calibration.npz", "validation.npz"):
        s3.upload_file(str(staging / name), servers.bucket, f"{prefix}/{name}")
        uri[name] = f"s3://{servers.bucket}/{prefix}/{name}"
    doc = spec_document(staging)
    doc["model"]["state_dict"] = uri["model.pt"]
    doc["data"].update(calibration=uri["calibration.npz"], validation=uri["validation.npz"])
    doc["targets"] = list(CLASSES)
    doc["store"] = f"s3://{servers.bucket}/{staging.parent.name}/store"
    doc["registry"]["tracking_uri"] = mlflow_uri
    doc["benchmark"] = {"batch_sizes": [1, 32], "iterations": 10, "warmup": 2,
                        "torch_compile": False}
    s3.put_object(Bucket=servers.bucket, Key=f"{prefix}/pipeline.yaml",
                  Body=yaml.safe_dump(doc).encode())
    shutil.rmtree(staging)
    return f"s3://{servers.bucket}/{prefix}/pipeline.yaml"


def _worker_env(env: dict[str, str], folder: Path, name: str, root: Path) -> dict[str, str]:
    """An empty folder of the worker's own: HOME, TMPDIR, cache, AIRFLOW_HOME, the catalog."""
    for sub in ("home", "tmp", "cache", "airflow/logs"):
        (folder / sub).mkdir(parents=True)
    (folder / "catalog.yaml").write_text(_catalog_yaml())
    return {**env, "HOME": str(folder / "home"), "TMPDIR": str(folder / "tmp"),
            "TRT_OPS_CACHE_DIR": str(folder / "cache"), "AIRFLOW_HOME": str(folder / "airflow"),
            "TRT_OPS_TARGETS": str(folder / "catalog.yaml"), "TRT_OPS_WORKER_NAME": name,
            "PYTHONPATH": str(AUDIT), "TRT_OPS_AUDIT_ROOT": str(root),
            "TRT_OPS_AUDIT_OWN": f"{folder}/", "TRT_OPS_AUDIT_LOG": str(folder / "audit.log")}


def test_workers_that_share_only_s3_mlflow_and_the_broker_build_and_register(
        database: str, servers, mlflow_server: str, digits_dir: Path, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlflow import MlflowClient

    home = tmp_path / "airflow"
    (home / "logs").mkdir(parents=True)
    api_port = _free_port()
    db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(SHARED_ENV)},
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
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # a killed worker's tasks are failed (and retried) 20 s after their last heartbeat
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # and the task it had reserved but not started comes back from the queue
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "45",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": servers.s3_endpoint, "region_name": "us-east-1"}}),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow_server}),
        # the image's default example folder: the same on every machine, never read
        "TRT_OPS_EXAMPLE_DIR": "/opt/trt-ops-example",
        "GX_ANALYTICS_ENABLED": "false",
        "MPLBACKEND": "Agg",
    }
    (tmp_path / "catalog.yaml").write_text(_catalog_yaml())
    control = {**env, "TRT_OPS_TARGETS": str(tmp_path / "catalog.yaml")}
    spec_uri = _spec_on_s3(servers, digits_dir, tmp_path / "staging", mlflow_server)
    _run(control, "db", "migrate")
    for _, pool, worker in CLASSES.values():
        _run(control, "pools", "set", pool, "2", f"engines built by {worker}")

    root = tmp_path_factory.getbasetemp()
    workers: dict[str, Path] = {}

    def start_worker(name: str, queues: str) -> subprocess.Popen:
        workers[name] = tmp_path / name
        return services.start(
            name, "celery", "worker", "-q", queues, "-H", f"{name}@%h", "--skip-serve-logs",
            cwd=workers[name], env=_worker_env(env, workers[name], name, root))

    services = Services(control, tmp_path)
    (queue_a, _, worker_a), (queue_b, _, worker_b) = CLASSES.values()
    with ExitStack() as stack:
        stack.callback(services.stop)
        services.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
        services.start("scheduler", "scheduler")
        services.start("dag-processor", "dag-processor")
        start_worker(worker_a, f"{queue_a},default")
        doomed = start_worker(worker_b, queue_b)

        _wait("the DAG processor to serialize the DAGs", lambda: len(_query(
            database, "SELECT dag_id FROM serialized_dag")) >= 2, services, 90)
        _run(control, "dags", "trigger", DAG_ID, "--run-id", "distributed",
             "--conf", json.dumps({"spec": spec_uri}))

        # SIGKILL worker-b, and the build it runs, mid-build; a replacement takes the queue
        killed = _wait("a build to start on worker-b", lambda: _query(
            database, "SELECT map_index FROM task_instance WHERE dag_id=%s AND task_id=%s AND "
            "state='running'", DAG_ID, "cpu-b.build"), services, TIMEOUT, poll=0.2)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        services.procs = [p for p in services.procs if p[1] is not doomed]
        start_worker("worker-b2", queue_b)

        state = _wait("the DAG run to finish", lambda: next(iter(
            s for (s,) in _query(database, "SELECT state FROM dag_run WHERE dag_id=%s", DAG_ID)
            if s in ("success", "failed")), None), services, TIMEOUT)
        tis = _query(database, "SELECT task_id, map_index, state, queue, pool, try_number FROM "
                     "task_instance WHERE dag_id=%s AND run_id='distributed'", DAG_ID)
        assert state == "success", "\n".join(map(str, sorted(tis))) + "\n" + \
            services.tail(worker_a) + "\n" + services.tail("worker-b2")
        consumer = _wait("the consumer DAG run, scheduled on the Asset", lambda: next(iter(
            s for (s,) in _query(database, "SELECT state FROM dag_run WHERE dag_id=%s",
                                 "trt_engine_consumer") if s in ("success", "failed")), None),
            services, 60)

    xcom = {(t, m): v for t, m, v in _query(
        database, "SELECT task_id, map_index, value FROM xcom WHERE dag_id=%s AND "
        "run_id='distributed' AND key='return_value'", DAG_ID)}
    xcom = {k: json.loads(v) if isinstance(v, str) else v for k, v in xcom.items()}
    served_by = {"cpu-a": {worker_a}, "cpu-b": {worker_b, "worker-b2"}}
    for name, (queue, pool, _) in CLASSES.items():
        for task in ("build", "validate", "benchmark"):
            rows = [r for r in tis if r[0] == f"{name}.{task}"]
            assert len(rows) == 2 and {r[2:5] for r in rows} == {("success", queue, pool)}, rows
            manifests = [xcom[(f"{name}.{task}", m)] for m in (0, 1)]
            assert {m["info"]["worker"] for m in manifests} <= served_by[name], (name, task)
            assert all(a["uri"].startswith("s3://") for m in manifests
                       for a in m["artifacts"].values())
        assert sorted(m["spec"]["precision"] for m in
                      (xcom[(f"{name}.build", i)] for i in (0, 1))) == ["fp16", "int8"]
    # the killed build was retried, and the retry ran on the replacement
    for (index,) in killed:
        [(try_number,)] = [(r[5],) for r in tis if r[:2] == ("cpu-b.build", index)]
        assert try_number == 2
        assert xcom[("cpu-b.build", index)]["info"]["worker"] == "worker-b2"

    registered = xcom[("register", -1)]
    assert registered["status"] == "OK"
    versions = MlflowClient(mlflow_server, mlflow_server).search_model_versions("name='digits-cnn'")
    assert [(v.version, v.status) for v in versions] == [(str(registered["info"]["version"]), "READY")]
    assert consumer == "success"
    # no worker opened a file outside its own folder (the example's, another worker's)
    for name, folder in workers.items():
        log = folder / "audit.log"
        assert not log.exists() or not log.read_text(), f"{name} read:\n{log.read_text()[:2000]}"
