#!/usr/bin/env python
"""The example DAG on Celery with two workers against ``trt-ops run`` of the same spec.

Two catalog classes (both this machine's CPU) each get their engines: the CLI builds them one
after the other in one process; the DAG's two Celery workers, one per class and one task at a
time (as the chart runs them), build them in parallel, with a worker for the default queue, the
scheduler, API server and DAG processor beside them. Both start from empty stores and MLflow
databases, so both do all the work. The DAG's time is the run's own, from its creation to its
end, as the Airflow UI shows it; the cluster is started and has served one small run first, as
it has in production.

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
    wait,
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
        # as in production: each class's worker runs one task at a time on its own queue (the
        # chart's GPU workers); Airflow's own worker takes the default queue (plan, export,
        # calibration, registration), two tasks at a time on this machine's two cores
        services.start(worker_a, "celery", "worker", "-q", queue_a, "-H", f"{worker_a}@%h",
                       "--skip-serve-logs", "-c", "1")
        services.start(worker_b, "celery", "worker", "-q", queue_b, "-H", f"{worker_b}@%h",
                       "--skip-serve-logs", "-c", "1")
        services.start("worker-default", "celery", "worker", "-q", "default", "-H",
                       "worker-default@%h", "--skip-serve-logs", "-c", "2")
        for name in (worker_a, worker_b, "worker-default"):  # connected, pool started
            wait(f"{name} to be ready", lambda n=name: " ready." in (work / f"{n}.log").read_text(),
                 services, 120, poll=0.5)
        # a production cluster has served runs before: one run of the small consumer DAG warms
        # the API server (its first task request costs seconds) and the scheduler
        run_airflow(env, "dags", "trigger", "trt_engine_consumer", "--run-id", "warm-up")
        finished_run(database, services, 120, dag_id="trt_engine_consumer")
        start = time.perf_counter()
        run_airflow(env, "dags", "trigger", DAG_ID, "--run-id", "bench",
                    "--conf", json.dumps({"spec": str(dag_spec)}))
        state = finished_run(database, services, 900)
        triggered = time.perf_counter() - start
        # the run's own wall time, as the Airflow UI shows it: from its creation (queued) to its
        # end; trigger-to-end adds the `airflow dags trigger` client's start-up and the polling
        ((dag,),) = query(database, "SELECT extract(epoch FROM end_date - queued_at) FROM dag_run "
                          "WHERE run_id='bench'")
        dag = float(dag)
        durations = dict(query(database, "SELECT task_id || '[' || map_index || ']', duration "
                               "FROM task_instance WHERE run_id='bench' AND state='success'"))
        timeline = query(database, "SELECT ti.task_id || '[' || ti.map_index || ']', "
                         "extract(epoch FROM ti.scheduled_dttm - r.start_date), "
                         "extract(epoch FROM ti.queued_dttm - r.start_date), "
                         "extract(epoch FROM ti.start_date - r.start_date), "
                         "extract(epoch FROM ti.end_date - r.start_date) FROM task_instance ti "
                         "JOIN dag_run r ON r.run_id = ti.run_id WHERE ti.run_id='bench' "
                         "ORDER BY ti.start_date")
    if state != "success":
        sys.exit(f"the DAG run ended {state}; logs in {work}")
    print(f"DAG on Celery, a worker per class (the run) {dag:6.1f} s   "
          f"{(dag / cli - 1) * 100:+.0f}% vs trt-ops run (goal: under +30%)")
    print(f"  from `airflow dags trigger` to the end    {triggered:7.1f} s")
    # where the DAG's time goes: inside tasks, or between them (scheduling, task start-up)
    print(f"  {len(durations)} tasks ran for {sum(durations.values()):.1f} s in all; the longest:")
    for task, seconds in sorted(durations.items(), key=lambda kv: -kv[1])[:6]:
        print(f"    {task:36s} {seconds:6.1f} s")
    print("  timeline (seconds from the run's start): scheduled, queued, started, ended")
    for task, *marks in timeline:
        print(f"    {task:36s} " + " ".join("   -  " if m is None else f"{float(m):6.1f}"
                                          for m in marks))


if __name__ == "__main__":
    main()
