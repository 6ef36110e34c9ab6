"""Servers shared by the registry and serving tests: a moto S3 server and an MLflow tracking
server over it.

Both are real processes on 127.0.0.1, started once per session on free ports and stopped at the
end (also when a test fails). The MLflow server keeps runs and registry in SQLite; its artifact
root is ``s3://<bucket>/mlflow`` on moto, so every artifact byte travels over HTTP to moto.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BUCKET = "trt-ops-registry"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {seconds}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclasses.dataclass
class Servers:
    tracking_uri: str
    s3_endpoint: str
    bucket: str
    workdir: Path

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint)


def digits_on_s3(servers: Servers, folder: Path, prefix: str) -> dict[str, Any]:
    """The digits example's weights and data in ``folder`` uploaded under ``prefix``; its spec
    naming them, and a store beside them, by ``s3://`` URI."""
    from trt_ops.examples.digits import spec_document

    s3 = servers.s3()
    uri = {}
    for name in ("model.pt", "calibration.npz", "validation.npz"):
        s3.upload_file(str(folder / name), servers.bucket, f"{prefix}/{name}")
        uri[name] = f"s3://{servers.bucket}/{prefix}/{name}"
    doc = spec_document(folder)
    doc["model"]["state_dict"] = uri["model.pt"]
    doc["data"].update(calibration=uri["calibration.npz"], validation=uri["validation.npz"])
    doc["store"] = f"s3://{servers.bucket}/{prefix}/store"
    return doc


_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    work = tmp_path_factory.mktemp("registry-servers")
    s3_port, mlflow_port = free_port(), free_port()
    s3_endpoint = f"http://127.0.0.1:{s3_port}"
    env_overrides = {**_AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
                     # the trt-ops store and boto3 in this process speak to moto too
                     "TRT_OPS_S3_ENDPOINT_URL": s3_endpoint,
                     # fail fast instead of retrying for minutes when a server is down
                     "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                     "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
    saved = {k: os.environ.get(k) for k in env_overrides}
    os.environ.update(env_overrides)
    procs: list[subprocess.Popen] = []
    try:
        moto_log = work / "moto.log"
        procs.append(subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=moto_log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy()))
        _wait_http(f"{s3_endpoint}/moto-api/", procs[-1], moto_log)
        import boto3

        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)

        mlflow_log = work / "mlflow.log"
        procs.append(subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server",
             "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
             "--default-artifact-root", f"s3://{BUCKET}/mlflow", "--no-serve-artifacts",
             "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
            stdout=mlflow_log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy(),
            cwd=work))
        tracking_uri = f"http://127.0.0.1:{mlflow_port}"
        _wait_http(f"{tracking_uri}/health", procs[-1], mlflow_log, seconds=90)
        yield Servers(tracking_uri, s3_endpoint, BUCKET, work)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
