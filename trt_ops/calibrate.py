"""Calibrate stage: the exported ONNX made ready for one precision and one engine backend.

Where Q/DQ nodes go depends on the runtime that fuses them, so the calibrator belongs to the
backend. This runs once per model, precision and backend (on CPU), not once per GPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from trt_ops import isolated
from trt_ops.cache import run_cached
from trt_ops.data import load_dataset, write_npz
from trt_ops.digest import cache_key
from trt_ops.engines import get_backend
from trt_ops.engines.base import check_precision_name
from trt_ops.export import check_onnx, local_onnx
from trt_ops.manifest import Manifest
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore

STAGE = "calibrate"


def calibrate(export: Manifest, calibration_data: str, inputs: Sequence[InputSpec],
              precision: str, backend: str, store: ArtifactStore, *,
              samples: int = 512, method: str = "entropy") -> Manifest:
    check_precision_name(precision)
    engine_backend = get_backend(backend)
    calibrator = engine_backend.calibrator(precision)
    onnx_artifact = export.artifact("onnx")
    if precision == "fp32":  # nothing to place: the exported graph is the fp32 model
        return Manifest(stage=STAGE, key=onnx_artifact.sha256[:24], artifacts={"onnx": onnx_artifact},
                        spec={"precision": precision, "backend": backend},
                        info={"calibrator": "passthrough"}, inputs={"onnx": onnx_artifact.sha256},
                        cache_hit=True)

    needs_data = precision in ("int8", "fp8")
    dataset = load_dataset(calibration_data, inputs, "calibration") if needs_data else None
    used = min(samples, len(dataset)) if dataset else 0
    spec = {"precision": precision, "backend": backend, "calibrator": calibrator,
            "method": method if needs_data else None, "samples": used}
    key = cache_key(STAGE, onnx=onnx_artifact.sha256,
                    data=dataset.sha256 if dataset else None, **spec)

    def compute() -> Manifest:
        with tempfile.TemporaryDirectory(prefix="trt-ops-calib-") as tmp:
            out = Path(tmp) / f"model.{precision}.onnx"
            npz = str(write_npz(Path(tmp) / "calib.npz", dataset, used)) if dataset else None
            info = isolated.call(calibrator, onnx_in=str(local_onnx(export, store)),
                                 onnx_out=str(out), data_npz=npz, precision=precision,
                                 method=method)
            graph = check_onnx(out)
            ops: dict[str, int] = {}
            for node in graph.graph.node:
                ops[node.op_type] = ops.get(node.op_type, 0) + 1
            artifact = store.put_file(f"{STAGE}/{key}/model.{precision}.onnx", out)
        return Manifest(
            stage=STAGE, key=key, artifacts={"onnx": artifact}, spec=spec,
            info={**info, "ops": ops, "output_names": export.info.get("output_names", [])},
            inputs={"onnx": onnx_artifact.sha256,
                    **({"calibration_data": dataset.sha256} if dataset else {})},
        )

    return run_cached(store, STAGE, key, compute)
