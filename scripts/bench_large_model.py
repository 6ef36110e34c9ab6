"""A model over 2 GB through the pipeline on this machine: wall time and peak memory per stage.

A wide MLP (``trt_ops.examples.wide_mlp``, seeded weights, over 2 GB in fp32 with the defaults)
goes through export, fp16 calibration, build, validation, and then ``trt-ops run`` (benchmark and
registration in a local MLflow registry; the earlier stages are cache hits, checked by size).
Each step runs as its own ``trt-ops`` process; its peak RSS (the largest process of the step,
the isolated calibrator included) is printed beside the model's size, the goal being well under
twice that size. Then ``trt-ops verify`` of the example's store: sizes only, and full sha256.
What onnxruntime holds above 1x is one weight at a time, so the largest weight's share of the
model decides the peaks: the default has one weight half the model; ``--hidden 8500 --depth 8``
is as large with eight weights of an eighth each. Usage:

    .venv/bin/python scripts/bench_large_model.py [--hidden 17000] [--depth 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

GB = 1024**3


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Runs ``cmd``; its wall seconds, the peak RSS (bytes) of its largest process, its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed (peak RSS {usage.ru_maxrss / 1024**2:.2f}"
                           f" GiB):\n{text[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, text  # ru_maxrss is in KiB on Linux


def write_example(folder: Path, args: argparse.Namespace) -> Path:
    rng = np.random.default_rng(0)
    np.savez(folder / "calibration.npz",
             x=rng.standard_normal((args.samples, args.features), dtype=np.float32))
    np.savez(folder / "validation.npz",
             x=rng.standard_normal((args.samples, args.features), dtype=np.float32))
    spec = {
        "name": "wide-mlp",
        "model": {"factory": "trt_ops.examples.wide_mlp:build_model",
                  "kwargs": {"features": args.features, "hidden": args.hidden,
                             "depth": args.depth},
                  "inputs": [{"name": "x", "shape": ["batch", args.features],
                              "dtype": "float32"}],
                  "outputs": ["logits"], "task": "classification"},
        "data": {"calibration": "calibration.npz", "validation": "validation.npz",
                 "min_samples": min(args.samples, 100)},
        "calibration": {"samples": args.samples},
        "precisions": ["fp16"],
        "store": "store",
        "thresholds": {"fp16": {"top1_agreement": 0.9}},
        "benchmark": {"batch_sizes": [1, 8], "iterations": 5, "warmup": 1,
                      "torch_compile": False},
        "registry": {"model_name": "wide-mlp",
                     "tracking_uri": f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"},
    }
    (folder / "mlflow").mkdir(exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=17000)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a "
                                                     "temporary folder, removed at the end)")
    args = parser.parse_args()

    from trt_ops.pipeline.steps import default_targets

    folder = Path(args.keep or tempfile.mkdtemp(prefix="trt-ops-large-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TRT_OPS_CACHE_DIR": str(folder / "cache")}
    trt_ops = [sys.executable, "-m", "trt_ops.cli"]
    try:
        spec = str(write_example(folder, args))
        j = {name: str(folder / f"{name}.json") for name in ("export", "fp16", "engine", "val")}
        target = default_targets()[0]
        steps = [
            ("export", ["export", spec, "-o", j["export"]]),
            ("calibrate fp16", ["calibrate", spec, "--export", j["export"], "--precision",
                                "fp16", "-o", j["fp16"]]),
            (f"build {target}", ["build", spec, "--calibrated", j["fp16"], "--target", target,
                                 "-o", j["engine"]]),
            ("validate", ["validate", spec, "--engine", j["engine"], "--export", j["export"],
                          "-o", j["val"]]),
            ("run: benchmark, register (rest cache hits)", ["run", spec]),
            ("verify --quick (sizes)", ["verify", "--quick", spec]),
            ("verify (sha256 of every object)", ["verify", spec]),
        ]
        rows = []
        model_bytes = None
        failed = None
        for name, cmd in steps:
            print(f"... {name}", file=sys.stderr, flush=True)
            try:
                seconds, rss, out = measured(trt_ops + cmd, env)
            except RuntimeError as exc:  # the figures so far are still worth printing
                failed = f"{name}: {exc}"
                break
            if model_bytes is None:
                model_bytes = json.loads(Path(j["export"]).read_text())["metrics"][
                    "parameters_bytes"]
            rows.append((name, seconds, rss))
            if name.startswith("run"):
                computed = [ln for ln in out.splitlines() if ln.startswith(("computed", "all steps",
                                                                          "registered"))]
                print("   " + "\n   ".join(computed), file=sys.stderr)
            if name.startswith("verify"):
                print("   " + out.strip().splitlines()[-1], file=sys.stderr)
        store_bytes = sum(p.stat().st_size for p in (folder / "store").rglob("*") if p.is_file())
        print(f"\nmodel: wide MLP {args.features}->{args.hidden}x{args.depth}->10, "
              f"{model_bytes / GB:.2f} GiB of fp32 weights; store {store_bytes / GB:.2f} GiB; "
              f"{os.cpu_count()} CPUs")
        print(f"{'step':<44} {'wall s':>8} {'peak RSS GiB':>13} {'RSS / model':>12}")
        for name, seconds, rss in rows:
            print(f"{name:<44} {seconds:>8.1f} {rss / GB:>13.2f} {rss / model_bytes:>11.2f}x")
        if failed:
            print(f"FAILED {failed}")
            sys.exit(1)
        total = sum(s for n, s, _ in rows if not n.startswith("verify"))
        peak = max(r for n, _, r in rows if not n.startswith("verify"))
        print(f"{'pipeline (export .. register)':<44} {total:>8.1f} {peak / GB:>13.2f} "
              f"{peak / model_bytes:>11.2f}x   (goal: well under 2x)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
