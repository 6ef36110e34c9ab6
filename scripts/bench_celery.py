#!/usr/bin/env python
"""The example DAG on Celery with two workers against ``trt-ops run`` of the same spec.

Two catalog classes (both this machine's CPU) each get their engines: the CLI builds them one
after the other in one process; the DAG's two Celery workers, one per class, build them in
parallel, with the scheduler, API server and DAG processor beside them. Both start from empty
stores and MLflow databases, so both do all the work. The DAG's time runs from the trigger to
the run's end (the cluster is started first, as it is in production).

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

    python scripts/bench_celery.py

Goal: the DAG adds under 30% to ``trt-ops run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.airflow.cluster import (  # after the repo root is on the path
    CLASSES,
    DAG_ID,
    Services,
    airflow_env,
    catalog_yaml,
    finished_run,
    free_port,
    fresh_database,
    query,
    run_airflow,
    start_control_plane,
)


def spec_file(folder: Path, example: Path, name: str) -> Path:
    from trt_ops.examples.digits import spec_document

    doc = spec_document(example)
    doc.update(targets=list(CLASSES), store=str(folder / f"store-{name}"))
    doc["registry"]["tracking_uri"] = f"sqlite:///{folder / f'mlflow-{name}.db'}"
    doc["benchmark"] = {"batch_sizes": [1, 32], "iterations": 20, "warmup": 3,
                        "torch_compile": False}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="trt-ops-bench-celery-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRT_OPS_"))}
    (work / "catalog.yaml").write_text(catalog_yaml())
    base.update(TRT_OPS_TARGETS=str(work / "catalog.yaml"), TRT_OPS_CACHE_DIR=str(work / "cache"),
                GX_ANALYTICS_ENABLED="false", MPLBACKEND="Agg")
    example = work / "example"
    subprocess.run([sys.executable, "-m", "trt_ops.cli", "example", "digits", "--dir",
                    str(example)], check=True, env=base, capture_output=True)

    cli_spec = spec_file(work, example, "cli")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trt_ops.cli", "run", str(cli_spec)], check=True,
                   env=base, cwd=work, capture_output=True)
    cli = time.perf_counter() - start
    print(f"trt-ops run (2 classes x int8, fp16)      {cli:7.1f} s")

    dag_spec = spec_file(work, example, "dag")
    with fresh_database() as database, ExitStack() as stack:
        api_port = free_port()
        env = airflow_env(base, work / "airflow", database, api_port)
        # the workers import the stages' libraries once, not in every task (as the chart does)
        env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = "trt_ops.celery_config.CELERY_CONFIG"
        env["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
            {"conn_type": "mlflow", "host": f"sqlite:///{work / 'mlflow-dag.db'}"})
        (work / "airflow" / "logs").mkdir(parents=True)
        services = Services(env, work)
        stack.callback(services.stop)
        start_control_plane(services, env, api_port, database)
        (queue_a, _, worker_a), (queue_b, _, worker_b) = CLASSES.values()
        services.start(worker_a, "celery", "worker", "-q", f"{queue_a},default", "-H",
                       f"{worker_a}@%h", "--skip-serve-logs")
        services.start(worker_b, "celery", "worker", "-q", queue_b, "-H", f"{worker_b}@%h",
                       "--skip-serve-logs")
        time.sleep(10)  # workers connected to the broker
        start = time.perf_counter()
        run_airflow(env, "dags", "trigger", DAG_ID, "--run-id", "bench",
                    "--conf", json.dumps({"spec": str(dag_spec)}))
        state = finished_run(database, services, 900)
        dag = time.perf_counter() - start
        durations = dict(query(database, "SELECT task_id || '[' || map_index || ']', duration "
                               "FROM task_instance WHERE run_id='bench' AND state='success'"))
    if state != "success":
        sys.exit(f"the DAG run ended {state}; logs in {work}")
    print(f"DAG on Celery, 2 workers (trigger to end)  {dag:7.1f} s   "
          f"{(dag / cli - 1) * 100:+.0f}% vs trt-ops run (goal: under +30%)")
    # where the DAG's time goes: inside tasks, or between them (scheduling, task start-up)
    print(f"  {len(durations)} tasks ran for {sum(durations.values()):.1f} s in all; the longest:")
    for task, seconds in sorted(durations.items(), key=lambda kv: -kv[1])[:6]:
        print(f"    {task:36s} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
