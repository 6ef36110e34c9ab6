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
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.airflow.cluster import (
    CLASSES,
    DAG_ID,
    Services,
    airflow_env,
    catalog_yaml,
    finished_run,
    free_port,
    fresh_database,
    query,
    reachable,
    run_airflow,
    start_control_plane,
    wait,
)
from tests.servers import digits_on_s3

TIMEOUT = 360  # seconds for the whole run once triggered, a retry included


@pytest.fixture
def database() -> Iterator[str]:
    if not (reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379)):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
    with fresh_database() as name:
        yield name


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
    shutil.copytree(digits_dir, staging, ignore=shutil.ignore_patterns("store"))
    prefix = f"{staging.parent.name}/inputs"
    doc = digits_on_s3(servers, staging, prefix)
    doc["targets"] = list(CLASSES)
    doc["registry"]["tracking_uri"] = mlflow_uri
    doc["benchmark"] = {"batch_sizes": [1, 32], "iterations": 10, "warmup": 2,
                        "torch_compile": False}
    servers.s3().put_object(Bucket=servers.bucket, Key=f"{prefix}/pipeline.yaml",
                            Body=yaml.safe_dump(doc).encode())
    shutil.rmtree(staging)
    return f"s3://{servers.bucket}/{prefix}/pipeline.yaml"


def _worker_env(env: dict[str, str], folder: Path, name: str, root: Path) -> dict[str, str]:
    """An empty folder of the worker's own: HOME, TMPDIR, cache, AIRFLOW_HOME, the catalog."""
    for sub in ("home", "tmp", "cache", "airflow/logs"):
        (folder / sub).mkdir(parents=True)
    (folder / "catalog.yaml").write_text(catalog_yaml())
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
    api_port = free_port()
    env = airflow_env({k: v for k, v in os.environ.items() if not k.startswith(SHARED_ENV)},
                      home, database, api_port)
    env.update({
        # a killed worker's tasks are failed (and retried) 10 s after their last heartbeat
        # (running tasks heartbeat every second: min_heartbeat_interval)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # and the task it had reserved but not started comes back from the queue
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "45",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": servers.s3_endpoint, "region_name": "us-east-1"}}),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": mlflow_server}),
        # the workers import the stages' libraries once (as the chart configures them)
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "trt_ops.celery_config.CELERY_CONFIG",
        # the image's default example folder: the same on every machine, never read
        "TRT_OPS_EXAMPLE_DIR": "/opt/trt-ops-example",
    })
    (tmp_path / "catalog.yaml").write_text(catalog_yaml())
    control = {**env, "TRT_OPS_TARGETS": str(tmp_path / "catalog.yaml")}
    spec_uri = _spec_on_s3(servers, digits_dir, tmp_path / "staging", mlflow_server)

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
        start_control_plane(services, control, api_port, database)
        start_worker(worker_a, f"{queue_a},default")
        doomed = start_worker(worker_b, queue_b)

        run_airflow(control, "dags", "trigger", DAG_ID, "--run-id", "distributed",
                    "--conf", json.dumps({"spec": spec_uri}))

        # SIGKILL worker-b, and the build it runs, mid-build; a replacement takes the queue
        killed = wait("a build to start on worker-b", lambda: query(
            database, "SELECT map_index FROM task_instance WHERE dag_id=%s AND task_id=%s AND "
            "state='running'", DAG_ID, "cpu-b.build"), services, TIMEOUT, poll=0.2)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        services.procs = [p for p in services.procs if p[1] is not doomed]
        start_worker("worker-b2", queue_b)

        state = finished_run(database, services, TIMEOUT)
        tis = query(database, "SELECT task_id, map_index, state, queue, pool, try_number FROM "
                    "task_instance WHERE dag_id=%s AND run_id='distributed'", DAG_ID)
        assert state == "success", "\n".join(map(str, sorted(tis))) + "\n" + \
            services.tail(worker_a) + "\n" + services.tail("worker-b2")
        consumer = finished_run(database, services, 60, dag_id="trt_engine_consumer")

    xcom = {(t, m): v for t, m, v in query(
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
