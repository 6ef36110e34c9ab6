"""Fixtures of the TensorRT tests: the digits example exported and calibrated for TensorRT once,
and an embedded MLflow registry (SQLite, artifacts in the session's temp dir)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

THRESHOLDS = {"top1_agreement": 0.98, "min_cosine": 0.98}  # the int8 gate of the GPU test


@dataclasses.dataclass
class Calibrated:
    """The example's fp32 export and its int8 Q/DQ ONNX for TensorRT, in one store."""

    folder: Path
    store: Any
    spec: Any
    export: Any
    int8: Any

    @property
    def inputs(self) -> Any:
        return self.spec.model.inputs


@pytest.fixture(scope="session")
def trt_digits(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Calibrated:
    """Model Optimizer's int8 Q/DQ placement of the digits CNN (128 samples, in its own process)."""
    from trt_ops.spec import load_spec
    from trt_ops.stages.calibrate import calibrate
    from trt_ops.stages.export import export_onnx
    from trt_ops.store import FileStore

    spec = load_spec(digits_dir / "pipeline.yaml")
    store = FileStore(tmp_path_factory.mktemp("trt-store"))
    export = export_onnx(spec.model.source(), spec.model.inputs, store)
    int8 = calibrate(export, spec.data.calibration, spec.model.inputs, "int8", "tensorrt", store,
                     samples=128)
    return Calibrated(digits_dir, store, spec, export, int8)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An embedded MLflow tracking and registry database of this session."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the default experiment's artifact folder is made here, not in ./
        MlflowClient(uri).search_experiments()
    return uri


def attempt(target: str, precision: str, build: Any, validation: Any = None,
            benchmark: Any = None) -> dict[str, Any]:
    """One engine attempt in the form the register stage takes (``Attempt.to_dict()``)."""
    return {"target": target, "precision": precision, "verdict": "PASSED", "reason": "",
            "fallback_from": None, "build": build.to_dict(),
            "validation": validation.to_dict() if validation else None,
            "benchmark": benchmark.to_dict() if benchmark else None}


def build_int8(d: Calibrated, out: Path, store: Any = None, **options: Any) -> Any:
    """The int8 digits engine built by the tensorrt backend in ``out``; its BuildResult."""
    from trt_ops.engines.base import BuildRequest
    from trt_ops.engines.tensorrt.backend import TensorRTBackend
    from trt_ops.targets.catalog import get_target

    request = BuildRequest(onnx_path=d.store.fetch(d.int8.artifact("onnx")), out_dir=out,
                           precision="int8", target=get_target("h100"),
                           profile=d.spec.profile(), options=options, store=store)
    return TensorRTBackend().build(request)


def load_engine(result: Any) -> Any:
    from trt_ops.engines.tensorrt.backend import TensorRTBackend

    return TensorRTBackend().load(result.engine_path, result.engine)


def sample_images(d: Calibrated, n: int = 8) -> np.ndarray:
    return np.load(d.folder / "validation.npz")["image"][:n].astype(np.float32)
