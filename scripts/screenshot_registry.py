"""Screenshot of a registered engine version in the MLflow UI, for the docs.

Starts a moto S3 server and an MLflow server (SQLite, artifacts in S3) on free local ports, runs
the digits example with registration, and photographs the model version page with headless
Chromium. Needs the ``playwright`` Python package and a system Chromium (not playwright's own
browser download):

    python scripts/screenshot_registry.py [--out docs/images/registry-version.png]
        [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs/images/registry-version.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trt-ops-screenshot-"))
    s3, http = f"http://127.0.0.1:{_port()}", _port()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", MLFLOW_S3_ENDPOINT_URL=s3,
                      GX_ANALYTICS_ENABLED="false", MPLBACKEND="Agg",
                      TRT_OPS_CACHE_DIR=str(work / "cache"))
    procs = []
    try:
        procs.append(subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p",
                                       s3.rsplit(":", 1)[1]], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait(f"{s3}/moto-api/", procs[-1])
        import boto3

        boto3.client("s3", endpoint_url=s3).create_bucket(Bucket="mlflow")
        tracking = f"http://127.0.0.1:{http}"
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
             "--default-artifact-root", "s3://mlflow/artifacts", "--no-serve-artifacts",
             "--host", "127.0.0.1", "--port", str(http), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work))
        _wait(f"{tracking}/health", procs[-1])

        import yaml

        from trt_ops.examples import digits
        from trt_ops.pipeline import run_pipeline
        from trt_ops.spec import load_spec

        digits.prepare(work / "digits")
        spec_path = work / "digits/pipeline.yaml"
        doc = yaml.safe_load(spec_path.read_text())
        doc.update(promote=True, registry={"model_name": "digits-cnn", "tracking_uri": tracking})
        spec_path.write_text(yaml.safe_dump(doc))
        summary = run_pipeline(load_spec(spec_path))
        version = summary.registered.info["version"]

        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{tracking}/#/models/digits-cnn/versions/{version}")
            page.get_by_text("cpu-avx512").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the UI keeps polling: networkidle never comes
            try:  # the assistant side panel hides half of the page
                page.get_by_role("button", name="Close").last.click(timeout=3000)
                page.wait_for_timeout(500)
            except PlaywrightTimeout:
                print("the assistant panel could not be closed; it stays in the picture")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
        print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
