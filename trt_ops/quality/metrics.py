"""Per-sample comparison of an engine's outputs with the FP32 reference, and its summary."""

from __future__ import annotations

import numpy as np
import pandas as pd


def sample_frame(reference: np.ndarray | list[np.ndarray], engine: np.ndarray | list[np.ndarray],
                 labels: np.ndarray | None, task: str) -> pd.DataFrame:
    """One row per sample comparing the primary output of engine and reference; outputs whose
    shape differs from sample to sample (a sequence axis) come as lists, one row each."""
    if isinstance(reference, list):
        rows = [sample_frame(r[None], e[None], None if labels is None else labels[i:i + 1], task)
                for i, (r, e) in enumerate(zip(reference, engine))]
        frame = pd.concat(rows, ignore_index=True)
        frame["sample"] = np.arange(len(frame))
        return frame
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
        # 1 only where both are zero: an engine that outputs zeros points nowhere
        "cosine": np.where(norms > 0, (r * e).sum(axis=1) / np.maximum(norms, 1e-300),
                           np.where(np.abs(r).max(axis=1) + np.abs(e).max(axis=1) > 0, 0.0, 1.0)),
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
        "samples": len(frame),
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
