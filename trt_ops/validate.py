"""Validate stage: an engine against the FP32 reference on the validation set.

The reference is the exported FP32 ONNX run by onnxruntime, which the export stage proved
equal to the PyTorch model within its tolerance. The per-sample frame (abs/rel error, cosine,
top-1 agreement, correctness where labels exist) is stored as Parquet, and the accuracy gate
decides pass or fail.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from trt_ops.cache import run_cached
from trt_ops.data import Dataset, load_dataset
from trt_ops.digest import cache_key
from trt_ops.engines import get_backend
from trt_ops.engines.base import Runner
from trt_ops.export import local_onnx
from trt_ops.gate import evaluate_gate
from trt_ops.hardware import host_info
from trt_ops.manifest import Manifest, Status
from trt_ops.progress import track
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore

STAGE = "validate"
BATCH = 32


def run_all(runner: Runner, data: Dataset, description: str, batch: int = BATCH) -> dict[str, np.ndarray]:
    """Runs every sample through ``runner`` in batches; outputs concatenated per name."""
    outs: dict[str, list[np.ndarray]] = {}
    starts = range(0, len(data), batch)
    for start in track(starts, description):
        for name, value in runner.infer(data.batch(start, start + batch)).items():
            outs.setdefault(name, []).append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def sample_frame(reference: np.ndarray, engine: np.ndarray, labels: np.ndarray | None,
                 task: str) -> pd.DataFrame:
    """One row per sample comparing the primary output of engine and reference."""
    r = reference.reshape(len(reference), -1).astype(np.float64)
    e = engine.reshape(len(engine), -1).astype(np.float64)
    diff = np.abs(e - r)
    scale = np.maximum(np.abs(r).max(axis=1), 1e-12)
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(e, axis=1)
    frame = pd.DataFrame({
        "sample": np.arange(len(r)),
        "max_abs_error": diff.max(axis=1),
        "mean_abs_error": diff.mean(axis=1),
        "max_rel_error": diff.max(axis=1) / scale,
        "cosine": np.where(norms > 0, (r * e).sum(axis=1) / np.maximum(norms, 1e-300), 1.0),
    })
    if task == "classification":
        frame["ref_top1"] = r.argmax(axis=1)
        frame["engine_top1"] = e.argmax(axis=1)
        frame["top1_agree"] = (frame["ref_top1"] == frame["engine_top1"]).astype(float)
        if labels is not None:
            frame["label"] = labels.astype(np.int64)
            frame["ref_correct"] = (frame["ref_top1"] == frame["label"]).astype(float)
            frame["engine_correct"] = (frame["engine_top1"] == frame["label"]).astype(float)
    return frame


def summarize(frame: pd.DataFrame) -> dict[str, float]:
    m: dict[str, float] = {
        "samples": int(len(frame)),
        "max_abs_error": float(frame["max_abs_error"].max()),
        "mean_abs_error": float(frame["mean_abs_error"].mean()),
        "p99_abs_error": float(frame["max_abs_error"].quantile(0.99)),
        "max_rel_error": float(frame["max_rel_error"].max()),
        "mean_cosine": float(frame["cosine"].mean()),
        "min_cosine": float(frame["cosine"].min()),
    }
    if "top1_agree" in frame:
        m["top1_agreement"] = float(frame["top1_agree"].mean())
    if "engine_correct" in frame:
        m["accuracy_reference"] = float(frame["ref_correct"].mean())
        m["accuracy_engine"] = float(frame["engine_correct"].mean())
        m["accuracy_drop"] = m["accuracy_reference"] - m["accuracy_engine"]
    return m


def validate_engine(engine: Manifest, export: Manifest, validation_data: str,
                    inputs: Sequence[InputSpec], store: ArtifactStore, *,
                    task: str, thresholds: dict[str, float]) -> Manifest:
    host = host_info()
    metadata = engine.info["metadata"]
    backend = get_backend(engine.spec["backend"])
    backend.check_compatible(metadata, host)
    data = load_dataset(validation_data, inputs, "validation")
    spec = {"task": task, "thresholds": thresholds, "precision": engine.spec["precision"],
            "target": engine.spec["target"]}
    key = cache_key(STAGE, engine=engine.artifact("engine").sha256,
                    reference=export.artifact("onnx").sha256, data=data.sha256, **spec)

    def compute() -> Manifest:
        from trt_ops.engines.onnxruntime import OnnxRuntimeRunner
        from trt_ops.report import validation_report

        with OnnxRuntimeRunner(local_onnx(export, store)) as ref_runner:
            reference = run_all(ref_runner, data, "reference fp32")
        engine_path = store.fetch(engine.artifact("engine"))
        with backend.load(engine_path, metadata) as runner:
            # within the engine's shape profile (a TensorRT engine refuses larger batches)
            max_batch = min(p["max"][0] for p in engine.spec["profile"].values())
            outputs = run_all(runner, data, f"engine {engine.spec['precision']}",
                              min(BATCH, max_batch))
        primary = export.info["output_names"][0]
        frame = sample_frame(reference[primary], outputs[primary], data.labels, task)
        frame.insert(1, "output", primary)
        metrics = summarize(frame)
        metrics["outputs_max_abs_error"] = {  # every output, not only the primary one
            n: float(np.abs(outputs[n].astype(np.float64) - reference[n]).max()) for n in reference}
        gate = evaluate_gate(frame, thresholds)
        with tempfile.TemporaryDirectory(prefix="trt-ops-validate-") as tmp:
            frame_path = Path(tmp) / "samples.parquet"
            frame.to_parquet(frame_path, index=False)
            report = validation_report(Path(tmp), frame, metrics, gate, engine, task)
            artifacts = {"samples": store.put_file(f"{STAGE}/{key}/samples.parquet", frame_path)}
            for name, path in report.items():
                artifacts[name] = store.put_file(f"{STAGE}/{key}/{path.name}", path)
        return Manifest(
            stage=STAGE, key=key, status=Status.OK if gate.passed else Status.FAIL,
            artifacts=artifacts, spec=spec, metrics=metrics,
            info={"gate": gate.to_dict(), "worker": host.hostname, "primary_output": primary},
            inputs={"engine": engine.artifact("engine").sha256,
                    "reference": export.artifact("onnx").sha256, "validation_data": data.sha256},
        )

    return run_cached(store, STAGE, key, compute)


def verdict_lines(manifest: Manifest) -> list[str]:
    """The gate's checks as 'PASSED | ...' / 'FAILED | ...' lines."""
    out = []
    for c in manifest.info.get("gate", {}).get("checks", []):
        op = ">=" if c["direction"] == "min" else "<="
        out.append(f"{'PASSED' if c['passed'] else 'FAILED'} | {c['name']}: {c['observed']} "
                   f"(needs {op} {c['threshold']})")
    return out


