"""The example DAG in the Airflow UI, in a real headless Chromium: its graph, and its trigger
form generated from the spec's schema, which Airflow accepts as it is.

An Airflow API server (which serves the UI) and a DAG processor run against the session's
SQLite metadata database. Set ``TRT_OPS_SCREENSHOTS`` to a folder to keep the screenshots
(the README's come from here: ``TRT_OPS_SCREENSHOTS=docs/images pytest tests/airflow/test_ui.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.conftest import airflow_env

DAG_ID = "trt_engine_pipeline"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def ui(airflow_db: Path, example_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Airflow UI's base URL, once the DAG processor has serialized the example DAG."""
    port, logs = _free_port(), tmp_path_factory.mktemp("ui-logs")
    env = airflow_env(
        AIRFLOW__API__PORT=str(port), AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(48),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5", TRT_OPS_EXAMPLE_DIR=str(example_folder))
    procs = [subprocess.Popen([sys.executable, "-m", "airflow", *cmd], env=env,
                              stdout=(logs / f"{cmd[0]}.log").open("w"), stderr=subprocess.STDOUT)
             for cmd in (["api-server", "--port", str(port), "--host", "127.0.0.1"],
                         ["dag-processor"])]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while True:
            try:
                if any(d["dag_id"] == DAG_ID for d in _get(f"{base}/api/v2/dags")["dags"]):
                    break
            except OSError:
                pass
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tails = "\n".join(f.read_text()[-2000:] for f in logs.iterdir())
                pytest.fail(f"the Airflow UI did not come up with the DAG:\n{tails}")
            time.sleep(1)
        yield base
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Chromium: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: object, url: str) -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.goto(url, wait_until="networkidle")
    page.get_by_text("Overview").first.wait_for(timeout=60_000)  # the UI has rendered the DAG
    return page


def _keep(page: object, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TRT_OPS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    assert path.stat().st_size > 20_000  # a rendered page, not a blank one
    return path


def test_graph_shows_one_group_per_catalog_class(ui, browser, tmp_path) -> None:
    from trt_ops.targets.catalog import load_catalog

    page = _page(browser, f"{ui}/dags/{DAG_ID}")
    page.get_by_role("button", name="Show Graph (Press g)").click()
    for name in ("plan", "check_data", "export", "calibrate_onnxruntime", "register",
                 *load_catalog()):
        page.get_by_text(name).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the layout settles
    _keep(page, "airflow-dag-graph.png", tmp_path)


def test_trigger_form_shows_the_spec_and_airflow_accepts_it(ui, browser, tmp_path) -> None:
    from trt_ops.operators.params import form_fields

    page = _page(browser, f"{ui}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    sections = ["Spec", "Pipeline", "Model", "Data", "Engines", "Calibration", "Export",
                "Benchmark", "Registry"]
    for section in sections:
        dialog.get_by_text(section, exact=True).wait_for(timeout=10_000)
    text = dialog.inner_text()
    assert [s for s in sections if s in text] == sections  # in the spec's order
    # a section at a time opens: the model's fields, then the engines'
    for section, labels in (("Engines", ("precisions", "targets", "thresholds", "fallback")),
                            ("Model", ("model: factory", "model: state dict", "model: inputs",
                                       "model: dims", "model: task"))):
        dialog.get_by_text(section, exact=True).click()
        dialog.get_by_text(labels[0]).first.wait_for(timeout=10_000)
        text = dialog.inner_text()
        assert all(label in text for label in labels), (section, text[-2000:])
    values = dialog.locator("input").evaluate_all("inputs => inputs.map(i => i.value)")
    assert "trt_ops.examples.digits:build_model" in values
    dialog.get_by_text("Model", exact=True).scroll_into_view_if_needed()
    _keep(page, "airflow-trigger-form.png", tmp_path)

    # the form's defaults pass Airflow's own validation of the params: the run is created,
    # and its conf holds every spec field
    def runs() -> dict[str, dict]:
        return {r["dag_run_id"]: r for r in _get(f"{ui}/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]}

    before = runs()
    dialog.get_by_role("button", name="Trigger").last.click()
    deadline = time.monotonic() + 30
    while not (new := [r for k, r in runs().items() if k not in before]):
        assert time.monotonic() < deadline, "the trigger form created no DAG run"
        time.sleep(0.5)
    assert set(form_fields()) <= set(new[0]["conf"])
