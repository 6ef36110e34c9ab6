"""Validate stage: an engine against the FP32 reference on the validation set.

The reference is the exported FP32 ONNX run by onnxruntime, which the export stage proved
equal to the PyTorch model within its tolerance (or the source ONNX itself). Samples of
different lengths run in batches of equal length, each at its real shape, through both. The per-sample frame (abs/rel error, cosine,
top-1 agreement, correctness where labels exist) is stored as Parquet, and the accuracy gate
decides pass or fail.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trt_ops.console import track
from trt_ops.data.datasets import Dataset, load_dataset
from trt_ops.engines import get_backend
from trt_ops.engines.base import Runner
from trt_ops.engines.contract import engine_from_metadata
from trt_ops.models.onnx import local_engine, local_onnx
from trt_ops.quality.gate import evaluate_gate
from trt_ops.quality.metrics import sample_frame, summarize
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest, Status
from trt_ops.targets.host import host_info

STAGE = "validate"
BATCH = 32


def run_all(runner: Runner, data: Dataset, description: str, batch: int = BATCH
            ) -> dict[str, np.ndarray | list[np.ndarray]]:
    """Runs every sample through ``runner`` in batches of equal lengths; per output name, the
    samples' outputs in sample order (one array, or a list where their shapes differ)."""
    outs: dict[str, list[np.ndarray | None]] = {}
    for index, feeds in track(list(data.batches(batch)), description):
        for name, value in runner.infer(feeds).items():
            per_sample = outs.setdefault(name, [None] * len(data))
            for k, i in enumerate(index):
                per_sample[i] = value[k]
    result: dict[str, np.ndarray | list[np.ndarray]] = {}
    for name, values in outs.items():
        shapes = {v.shape for v in values if v is not None}
        result[name] = np.stack(values) if len(shapes) == 1 else list(values)  # type: ignore[arg-type]
    return result


def max_abs_error(reference: np.ndarray | list[np.ndarray], engine: np.ndarray | list[np.ndarray]) -> float:
    return max(float(np.abs(np.asarray(e, np.float64) - r).max()) for r, e in zip(reference, engine))


def validate_engine(engine: Manifest, export: Manifest, validation_data: str,
                    inputs: Sequence[InputSpec], store: ArtifactStore, *,
                    task: str, thresholds: dict[str, float],
                    dims: Mapping[str, Mapping[str, int]] | None = None) -> Manifest:
    host = host_info()
    contract = engine_from_metadata(engine.info["metadata"], f"the {STAGE} stage's engine")
    backend = get_backend(contract.backend)
    backend.check_compatible(contract, host)
    data = load_dataset(validation_data, inputs, "validation", dims)
    spec = {"task": task, "thresholds": thresholds, "precision": engine.spec["precision"],
            "target": engine.spec["target"]}
    key = cache_key(STAGE, engine=engine.artifact("engine").sha256,
                    reference=export.artifact("onnx").sha256, data=data.sha256, **spec)

    def compute() -> Manifest:
        from trt_ops.engines.onnxruntime import OnnxRuntimeRunner
        from trt_ops.reports.pages import validation_report

        # neither run is timed: without prepacked weights each holds its model once
        with OnnxRuntimeRunner(local_onnx(export, store), prepack=False) as ref_runner:
            reference = run_all(ref_runner, data, "reference fp32")
        engine_path = local_engine(engine, store)
        with backend.load(engine_path, contract, timed=False) as runner:
            # within the engine's shape profile (a TensorRT engine refuses larger batches)
            outputs = run_all(runner, data, f"engine {contract.precision}",
                              min(BATCH, contract.max_batch() or BATCH))
        primary = export.info["output_names"][0]
        frame = sample_frame(reference[primary], outputs[primary], data.labels, task)
        frame.insert(1, "output", primary)
        metrics: dict[str, Any] = dict(summarize(frame))
        metrics["outputs_max_abs_error"] = {  # every output, not only the primary one
            n: max_abs_error(reference[n], outputs[n]) for n in reference}
        metrics["lengths"] = {d: [int(v.min()), int(v.max())] for d, v in data.lengths.items()}
        gate = evaluate_gate(frame, thresholds)
        with tempfile.TemporaryDirectory(prefix="trt-ops-validate-") as tmp:
            frame_path = Path(tmp) / "samples.parquet"
            frame.to_parquet(frame_path, index=False)
            report = validation_report(Path(tmp), frame, metrics, gate, engine, task)
            artifacts = {"samples": store.put_artifact(f"{STAGE}/{key}/samples.parquet", frame_path)}
            for name, path in report.items():
                artifacts[name] = store.put_artifact(f"{STAGE}/{key}/{path.name}", path)
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


