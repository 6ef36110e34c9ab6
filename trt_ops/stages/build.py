"""Build stage: the calibrated ONNX compiled into an engine for one target class.

The task first checks that it runs on the hardware its target names: an engine built on the
wrong GPU (or CPU class) would be registered under a class it does not belong to.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from trt_ops.engines import get_backend
from trt_ops.engines.base import BuildRequest, ShapeProfile
from trt_ops.errors import EngineError, IntegrityError
from trt_ops.models.onnx import local_onnx
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest
from trt_ops.targets.catalog import get_target
from trt_ops.targets.host import HostInfo, check_target

STAGE = "build"


def hardware_id(host: HostInfo, gpu: bool) -> str:
    """The part of an engine's key that names the hardware it was built for."""
    if gpu:
        g = host.gpus[0]
        return f"{g.product}|sm{g.compute_capability}"
    return host.cpu_isa


def build_engine(calibrated: Manifest, target_name: str, store: ArtifactStore, *,
                 profile: ShapeProfile, options: dict[str, Any] | None = None,
                 catalog: str | None = None, host: HostInfo | None = None) -> Manifest:
    target = get_target(target_name, catalog)
    host = check_target(target, host)  # before any work: a mis-routed task must not build
    backend = get_backend(target.backend)
    reason = backend.unavailable_reason()
    if reason:
        raise EngineError(f"cannot build for target {target.name!r}: {reason}",
                          f"run this task on a {target.queue!r} worker that has {target.backend}")
    precision = calibrated.spec["precision"]
    backend.check_precision(precision, target)
    onnx_artifact = calibrated.artifact("onnx")
    options = dict(options or {})
    spec = {"target": target.name, "backend": backend.name, "backend_version": backend.version(),
            "hardware": hardware_id(host, target.is_gpu), "precision": precision,
            "profile": profile, "options": options}
    key = cache_key(STAGE, onnx=onnx_artifact.sha256, **spec)

    def compute() -> Manifest:
        with tempfile.TemporaryDirectory(prefix="trt-ops-build-") as tmp:
            # external weights (models over 2 GB) beside the model, under the name it records
            request = BuildRequest(onnx_path=local_onnx(calibrated, store), out_dir=Path(tmp),
                                   precision=precision, target=target, profile=profile,
                                   options=options, store=store)
            result = backend.build(request)
            artifacts = {"engine": store.put_artifact(f"{STAGE}/{key}/{result.engine_path.name}",
                                                  result.engine_path)}
            if artifacts["engine"].sha256 != result.engine.sha256:
                raise IntegrityError(f"the stored engine has sha256 {artifacts['engine'].sha256}, "
                                     f"the {backend.name} backend recorded {result.engine.sha256}",
                                     "build again; the engine file changed after it was built")
            for name, path in result.extra_files.items():
                artifacts[name] = store.put_artifact(f"{STAGE}/{key}/{path.name}", path)
        return Manifest(
            stage=STAGE, key=key, artifacts=artifacts, spec=spec,
            # the engine contract (trt_ops.engines.contract), read back with engine_from_metadata
            info={"metadata": result.engine.model_dump(mode="json"),
                  "target": target.to_dict(), "worker": host.hostname},
            inputs={"onnx": onnx_artifact.sha256},
        )

    return run_cached(store, STAGE, key, compute)
