"""Times the data checks and the accuracy gate on 10,000 samples (after the GX import).

    python scripts/bench_checks.py [--samples 10000]

Two shapes: digits-like (1x8x8 float32) and a larger sample (3x64x64 float32), each as a
calibration and a validation set written to .npz; the gate runs on a 10-class per-sample frame.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def gate_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ref_top1 = rng.integers(0, 10, n)
    engine_top1 = np.where(rng.random(n) < 0.995, ref_top1, (ref_top1 + 1) % 10)
    labels = np.where(rng.random(n) < 0.97, ref_top1, rng.integers(0, 10, n))
    return pd.DataFrame({
        "sample": np.arange(n), "output": "logits",
        "max_abs_error": rng.gamma(2.0, 0.02, n), "mean_abs_error": rng.gamma(2.0, 0.005, n),
        "max_rel_error": rng.gamma(2.0, 0.01, n), "cosine": 1 - rng.gamma(1.0, 1e-4, n),
        "ref_top1": ref_top1, "engine_top1": engine_top1,
        "top1_agree": (ref_top1 == engine_top1).astype(float), "label": labels,
        "ref_correct": (ref_top1 == labels).astype(float),
        "engine_correct": (engine_top1 == labels).astype(float)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    n = parser.parse_args().samples
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    import great_expectations  # noqa: F401  - timed apart: the goal is for the checks themselves

    from trt_ops.quality.data_suites import check_datasets
    from trt_ops.quality.gate import evaluate_gate
    from trt_ops.spec import DEFAULT_THRESHOLDS, InputSpec
    print(f"import (GX and trt_ops)          {time.perf_counter() - start:6.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        for label, shape in (("digits 1x8x8", (1, 8, 8)), ("image 3x64x64", (3, 64, 64))):
            inputs = (InputSpec(name="image", shape=[1, *shape], dtype="float32"),)
            paths = []
            for role in ("calibration", "validation"):
                arrays = {"image": rng.random((n, *shape), dtype=np.float32)}
                if role == "validation":
                    arrays["labels"] = rng.integers(0, 10, n)
                paths.append(Path(tmp) / f"{role}-{shape[1]}.npz")
                np.savez(paths[-1], **arrays)
            start = time.perf_counter()
            result = check_datasets(*paths, inputs, report_dir=Path(tmp))
            seconds = time.perf_counter() - start
            assert result.passed, result.failures
            print(f"data checks, {label:14s}     {seconds:6.2f} s  "
                  f"({n} + {n} samples, {result.expectations} expectations, Data Docs included)")

    frame = gate_frame(n, rng)
    thresholds = {**DEFAULT_THRESHOLDS["int8"], "max_abs_error": 1.0, "mean_abs_error": 0.1,
                  "mean_cosine": 0.99}
    start = time.perf_counter()
    gate = evaluate_gate(frame, thresholds)
    print(f"accuracy gate                    {time.perf_counter() - start:6.2f} s  "
          f"({n} samples, {len(gate.checks)} checks, passed={gate.passed})")


if __name__ == "__main__":
    main()
