"""Registered versions to serve, on the registry tests' real MLflow server and moto S3.

- ``digits_version``: the example pipeline's onnxruntime engines, registered as ``digits-serve``.
- ``trt_versions``: ``digits-trt``, versions whose engines are TensorRT engines for H100, H200
  and L4. TensorRT cannot run here, so their plan files are **placeholder bytes** (real sha256
  digests, real registration through the register stage, but no engine inside): they exercise
  the repository layout and config.pbtxt, and Triton never loads them in these tests. Their gate
  metrics are made up for the same reason; only the verdicts matter here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Servers, free_port

TRT_VERSION = "10.13.3"


def register(run: Any, srv: Servers, name: str, attempts: list[dict], promote: bool = False):
    from trt_ops.stages.register import register_engines
    from trt_ops.store import open_store

    return register_engines(name, run.export, attempts, open_store(run.store),
                            calibrations=list(run.calibrations.values()),
                            tracking_uri=srv.tracking_uri, promote=promote,
                            pipeline_run_id=run.run_id)


def placeholder_attempt(run: Any, target: str, verdict: str = "PASSED", reason: str = "",
                        latency_ms: float = 1.0) -> dict[str, Any]:
    """A TensorRT attempt for ``target`` whose plan is placeholder bytes (see the module doc)."""
    from trt_ops.engines.contract import (
        GpuHardware,
        TensorRTEngine,
        TimingCacheRecord,
        engine_from_metadata,
    )
    from trt_ops.engines.tensorrt.settings import BuilderSettings
    from trt_ops.store import open_store
    from trt_ops.store.manifest import Manifest
    from trt_ops.targets.catalog import get_target

    t = get_target(target)
    profile = run.attempts[0].to_dict()["build"]["info"]["metadata"]["profile"]
    store = open_store(run.store)
    plan = store.put_bytes(f"placeholder-plans/{target}/engine.plan",
                           f"placeholder TensorRT plan for {t.gpu_product}, not an engine".encode())
    onnxruntime_engine = engine_from_metadata(run.attempts[0].build.info["metadata"])
    metadata = TensorRTEngine(
        backend_version=TRT_VERSION, precision="fp16", target=target,
        hardware=GpuHardware(gpu_product=t.gpu_product, compute_capability=t.compute_capability),
        inputs=onnxruntime_engine.inputs, outputs=onnxruntime_engine.outputs, profile=profile,
        sha256=plan.sha256, size=plan.size, build_seconds=0.0, builder=BuilderSettings(),
        timing_cache=TimingCacheRecord(enabled=False)).model_dump(mode="json")
    build = Manifest("build", f"placeholder-{target}", artifacts={"engine": plan},
                     spec={"target": target, "precision": "fp16", "backend": "tensorrt"},
                     info={"metadata": metadata})
    gate = {"top1_agreement": 1.0 if verdict == "PASSED" else 0.9, "accuracy_drop": 0.0}
    return {"target": target, "precision": "fp16", "verdict": verdict, "reason": reason,
            "fallback_from": None, "build": build.to_dict(),
            "validation": Manifest("validate", f"v-{target}", metrics=gate).to_dict(),
            "benchmark": Manifest("benchmark", f"b-{target}",
                                  metrics={"latency_p50_ms": latency_ms}).to_dict()}


@pytest.fixture(scope="session")
def digits_version(digits_run, servers):
    """The example's engines as ``digits-serve`` (every gate passed: candidate and champion)."""
    return register(digits_run, servers, "digits-serve",
                    [a.to_dict() for a in digits_run.attempts], promote=True)


@pytest.fixture(scope="session")
def trt_versions(digits_run, servers) -> dict[str, Any]:
    """``digits-trt`` version 1: H100, H200 and L4 passed (champion); version 2: H200's gate
    failed, H100 and L4 passed (candidate only)."""
    v1 = register(digits_run, servers, "digits-trt",
                  [placeholder_attempt(digits_run, t, latency_ms=i + 1.0)
                   for i, t in enumerate(("h100", "h200", "l4"))], promote=True)
    v2 = register(digits_run, servers, "digits-trt", [
        placeholder_attempt(digits_run, "h100"), placeholder_attempt(digits_run, "l4"),
        placeholder_attempt(digits_run, "h200", "FAILED",
                            "FAILED | top1_agreement 0.9 < 0.99")], promote=True)
    return {"all_passed": v1, "h200_failed": v2}


@pytest.fixture
def s3_repository(servers) -> str:
    """A repository root of the test's own in the moto bucket."""
    return f"s3://{servers.bucket}/triton-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def cli_env(servers) -> dict[str, str]:
    """The environment a user's shell would have: the virtual environment active (``mlflow
    models serve`` starts ``uvicorn`` from PATH), MLflow's and S3's endpoints."""
    return {**os.environ, "MLFLOW_TRACKING_URI": servers.tracking_uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def mlflow_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(Path(sys.executable).parent / "mlflow"), *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlflow {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def deploy_client(servers_: Servers, target: str = "triton"):
    import mlflow
    from mlflow.deployments import get_deploy_client

    mlflow.set_tracking_uri(servers_.tracking_uri)
    return get_deploy_client(target)


__all__ = ["deploy_client", "free_port", "mlflow_cli", "placeholder_attempt", "register"]
