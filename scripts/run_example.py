"""The README's main job: the digits example through the example DAG, on embedded defaults.

Airflow runs ``dags/trt_engine_pipeline.py`` with ``dag.test()`` on a SQLite metadata database
in ``work/airflow``; the artifact store is a local folder and MLflow a local SQLite registry,
both in the example's folder. The run ends with the registered version's URI, the command that
opens the MLflow UI on it, and where the engines and reports are. Run it again and every task
is a cache hit and no new version is registered.

    .venv/bin/python scripts/run_example.py [--dir work/digits] [-v]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def airflow_env(home: Path, verbose: bool) -> None:
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "ERROR",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "false",
    })


def migrate(home: Path) -> None:
    """``airflow db migrate`` once (and again only when Airflow's version changed)."""
    import airflow

    stamp = home / ".migrated"
    if stamp.is_file() and stamp.read_text() == airflow.__version__:
        return
    print("preparing Airflow's metadata database (once)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True, env=os.environ.copy())
    stamp.write_text(airflow.__version__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(REPO / "work" / "digits"))
    parser.add_argument("-v", "--verbose", action="store_true", help="Airflow's task logs too")
    args = parser.parse_args()
    folder = Path(args.dir).resolve()
    home = folder.parent / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    airflow_env(home, args.verbose)
    os.environ["TRT_OPS_EXAMPLE_DIR"] = str(folder)

    from trt_ops.console import configure, err_console, print_table
    from trt_ops.examples import digits

    configure(args.verbose)
    console = err_console()
    spec_path = digits.prepare(folder)
    migrate(home)
    from trt_ops.operators.local_run import load_dag, xcom_values

    dag = load_dag(REPO / "dags" / "trt_engine_pipeline.py").dag
    console.print(f"[bold]airflow dags test[/] trt_engine_pipeline, spec {spec_path}")
    start = time.perf_counter()
    with console.status("running the DAG (check data, export, calibrate, build, validate, "
                        "benchmark, register)..."):
        run = dag.test(run_conf={"spec": str(spec_path)})
    tasks = sorted(run.get_task_instances(),
                   key=lambda ti: (str(ti.start_date or ""), ti.task_id, ti.map_index))
    rows = []
    for ti in tasks:
        if str(ti.state) == "skipped":
            continue
        value = (xcom_values(run, ti.task_id) or [None])[max(ti.map_index, 0)] \
            if str(ti.state) == "success" else None
        hit = isinstance(value, dict) and value.get("cache_hit")
        name = ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
        rows.append({"task": name, "state": str(ti.state),
                     "seconds": f"{ti.duration or 0:.2f}", "cache hit": "yes" if hit else ""})
    print_table(f"DAG run {run.run_id}: {run.state} in {time.perf_counter() - start:.0f} s", rows)
    if str(run.state) != "success":
        console.print("[red]the DAG run failed[/]; run again with -v for Airflow's task logs")
        return 1
    [registered] = xcom_values(run, "register")
    info = registered["info"]
    tracking = f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"
    new = "" if registered["cache_hit"] else " (new)"
    console.print(f"\nregistered: [bold]{info['model_uri']}[/]{new}, aliases "
                  f"{', '.join(info['aliases'])}")
    console.print(f"open it in the MLflow UI:\n  .venv/bin/mlflow ui --backend-store-uri "
                  f"{tracking} --port 5000\n  then http://127.0.0.1:5000/#/models/"
                  f"{info['model_name']}/versions/{info['version']}")
    console.print(f"engines, validation reports (HTML) and run records: {folder / 'store'}")
    console.print(f"load it: mlflow.pyfunc.load_model(\"models:/{info['model_name']}@candidate\")"
                  f" with MLFLOW_TRACKING_URI={tracking}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
