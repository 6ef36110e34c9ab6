"""Speed of the engines against PyTorch eager and torch.compile, on this machine's CPU, in one run.

ResNet-18-sized network (random weights, 224x224): PyTorch eager FP32, torch.compile FP32
(default mode; its compilation is in the warm-up), the FP32 onnxruntime engine and the int8
onnxruntime engine (its own QDQ placement), at batch 1 and 32; plus the int8 engine's top-1
agreement with FP32 on random inputs. Usage:

    .venv/bin/python scripts/bench_engines.py [--iterations 10] [--samples 256]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256, help="validation samples")
    parser.add_argument("--calibration-samples", type=int, default=64)
    args = parser.parse_args()

    import torch

    from trt_ops.data.synthetic import sample_feeds
    from trt_ops.engines import get_backend
    from trt_ops.models.sources import load_model
    from trt_ops.pipeline.steps import default_targets
    from trt_ops.spec import InputSpec
    from trt_ops.stages.benchmark import time_calls
    from trt_ops.stages.build import build_engine
    from trt_ops.stages.calibrate import calibrate
    from trt_ops.stages.export import export_onnx
    from trt_ops.stages.validate import validate_engine
    from trt_ops.store import open_store

    source = {"factory": "trt_ops.examples.resnet:build_model"}
    inputs = (InputSpec(name="image", shape=[1, 3, 224, 224]),)
    target = default_targets()[0]
    profile = {"image": {"min": [1, 3, 224, 224], "opt": [32, 3, 224, 224],
                         "max": [32, 3, 224, 224]}}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "store")
        rng = np.random.default_rng(0)
        calib, val = Path(tmp) / "calib.npz", Path(tmp) / "val.npz"
        np.savez(calib, image=rng.standard_normal((args.calibration_samples, 3, 224, 224), np.float32))
        np.savez(val, image=rng.standard_normal((args.samples, 3, 224, 224), np.float32))

        export = export_onnx(source, inputs, store)
        engines = {}
        for precision in ("fp32", "int8"):
            cal = calibrate(export, str(calib), inputs, precision, "onnxruntime", store,
                            samples=args.calibration_samples)
            engines[precision] = build_engine(cal, target, store, profile=profile)
        agreement = validate_engine(engines["int8"], export, str(val), inputs, store,
                                    task="classification", thresholds={}).metrics

        model = load_model(source)
        compiled = torch.compile(model)
        from trt_ops.engines.contract import engine_from_metadata

        backend = get_backend("onnxruntime")
        runners = {p: backend.load(store.fetch(m.artifact("engine")),
                                   engine_from_metadata(m.info["metadata"]))
                   for p, m in engines.items()}
        print(f"ResNet-18-sized network, 224x224, {torch.get_num_threads()} threads, "
              f"target {target}; {args.iterations} timed iterations after {args.warmup} warm-up")
        print(f"{'batch':>5} | {'engine':<24} | {'p50 ms':>9} | {'p99 ms':>9} | {'img/s':>8} | "
              f"{'vs PyTorch':>10}")
        print("-" * 80)
        for batch in (1, 32):
            feeds = sample_feeds(inputs, batch)
            x = torch.from_numpy(feeds["image"])

            def call(m: torch.nn.Module, x: torch.Tensor = x) -> None:
                with torch.inference_mode():
                    m(x)

            rows = {"PyTorch eager fp32": time_calls(lambda: call(model), args.iterations,
                                                     args.warmup, batch, ""),
                    "torch.compile fp32": time_calls(lambda: call(compiled), args.iterations,
                                                     max(args.warmup, 2), batch, "")}
            for p, runner in runners.items():
                rows[f"onnxruntime {p}"] = time_calls(lambda r=runner, f=feeds: r.infer(f),
                                                       args.iterations, args.warmup, batch, "")
            base = rows["PyTorch eager fp32"]["throughput"]
            for name, r in rows.items():
                print(f"{batch:>5} | {name:<24} | {r['p50_ms']:>9.1f} | {r['p99_ms']:>9.1f} | "
                      f"{r['throughput']:>8.1f} | {r['throughput'] / base:>9.2f}x")
        print(f"\nint8 vs fp32 on {int(agreement['samples'])} random inputs: top-1 agreement "
              f"{agreement['top1_agreement']:.4f}, mean cosine {agreement['mean_cosine']:.4f}")


if __name__ == "__main__":
    main()
