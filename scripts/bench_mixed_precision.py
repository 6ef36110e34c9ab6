"""int8 that passes its gate: MobileNetV2 (ImageNet weights) on natural crops, in one run.

Side by side at batch 32 on this machine's CPU: PyTorch eager FP32, the FP32 onnxruntime engine,
the plain int8 engine and the mixed-precision int8 engine (the fewest sensitive layers kept
float until the int8 gate passes on held-out calibration samples): top-1 agreement with FP32
and min cosine on held-out validation crops, throughput, and the search's own time; beside them,
the FP32 engine with only its input rounded to the int8 grid (what one 8-bit rounding costs on
these crops). The calibration, validation and gate are the pipeline's own stages. Usage:

    .venv/bin/python scripts/bench_mixed_precision.py [--iterations 10] [--validation 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

INPUT_ROUNDED = "fp32, input on int8 grid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # onnxruntime's entropy calibrator keeps every activation of every sample in memory:
    # 128 crops of MobileNetV2 take about 5 GB
    parser.add_argument("--calibration", type=int, default=128, help="calibration crops "
                        "(a quarter of them held out for the search's gate)")
    parser.add_argument("--validation", type=int, default=512, help="validation crops")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--method", default="entropy", help="calibration method")
    parser.add_argument("--time-limit", type=float, default=900, help="search seconds")
    parser.add_argument("--max-float-fraction", type=float, default=0.25)
    parser.add_argument("--holdout", type=float, default=0.25, help="share of the calibration "
                        "crops held out for the search's gate (they cost no calibration memory)")
    args = parser.parse_args()

    import torch

    from trt_ops.calibration.mixed_precision import to_int8_grid
    from trt_ops.engines import get_backend
    from trt_ops.engines.contract import engine_from_metadata
    from trt_ops.examples.mobilenet import natural_crops, pretrained, weights_path
    from trt_ops.pipeline.steps import default_targets
    from trt_ops.quality.gate import check_frame
    from trt_ops.quality.metrics import sample_frame
    from trt_ops.spec import InputSpec
    from trt_ops.spec.schema import DEFAULT_THRESHOLDS, MixedPrecisionSpec
    from trt_ops.stages.benchmark import time_calls
    from trt_ops.stages.build import build_engine
    from trt_ops.stages.calibrate import calibrate
    from trt_ops.stages.export import export_onnx
    from trt_ops.stages.validate import validate_engine
    from trt_ops.store import open_store

    source = {"factory": "trt_ops.examples.mobilenet:build_model", "state_dict": str(weights_path())}
    inputs = (InputSpec(name="image", shape=[1, 3, 224, 224]),)
    target = default_targets()[0]
    b = args.batch
    profile = {"image": {"min": [1, 3, 224, 224], "opt": [b, 3, 224, 224], "max": [b, 3, 224, 224]}}
    thresholds = DEFAULT_THRESHOLDS["int8"]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "store")
        calib, val = Path(tmp) / "calib.npz", Path(tmp) / "val.npz"
        np.savez(calib, image=natural_crops(args.calibration, seed=1))
        val_images = natural_crops(args.validation, seed=2)
        np.savez(val, image=val_images)

        export = export_onnx(source, inputs, store)
        cals, seconds = {}, {}
        mixed = MixedPrecisionSpec(time_limit_s=args.time_limit, holdout=args.holdout,
                                   max_float_fraction=args.max_float_fraction).model_dump()
        for name, precision, settings in (("fp32", "fp32", None),
                                          ("int8", "int8", {**mixed, "mode": "off"}),
                                          ("mixed int8", "int8", mixed)):
            start = time.perf_counter()
            # plain int8 is calibrated on the crops mixed int8 calibrates on (not the held-out)
            used = args.calibration - (round(args.calibration * args.holdout)
                                       if name == "int8" else 0)
            cals[name] = calibrate(export, str(calib), inputs, precision, "onnxruntime", store,
                                   samples=used, method=args.method, mixed=settings,
                                   thresholds=thresholds, task="classification")
            seconds[name] = time.perf_counter() - start
        engines = {n: build_engine(c, target, store, profile=profile) for n, c in cals.items()}
        metrics = {n: validate_engine(e, export, str(val), inputs, store, task="classification",
                                      thresholds=thresholds).metrics for n, e in engines.items()}

        model = pretrained()
        backend = get_backend("onnxruntime")
        runners = {n: backend.load(store.fetch(e.artifact("engine")),
                                   engine_from_metadata(e.info["metadata"]))
                   for n, e in engines.items()}
        # eager against the FP32 reference of the validation stage (the exported ONNX)
        with torch.inference_mode():
            eager = np.concatenate([model(torch.from_numpy(val_images[i:i + b])).numpy()
                                    for i in range(0, len(val_images), b)])
        primary = export.info["output_names"][0]
        reference = np.concatenate([runners["fp32"].infer({"image": val_images[i:i + b]})[primary]
                                    for i in range(0, len(val_images), b)])
        cos = (eager * reference).sum(1) / (np.linalg.norm(eager, axis=1)
                                            * np.linalg.norm(reference, axis=1))
        rows = {"PyTorch eager fp32": ({"min_cosine": float(cos.min()), "top1_agreement":
                                        float((eager.argmax(1) == reference.argmax(1)).mean())},
                                       None)}
        for n in engines:
            rows[f"onnxruntime {n}"] = (metrics[n], n)
        # what one 8-bit rounding costs: the FP32 engine with only its input rounded to the int8
        # grid, as every int8 engine's first Q/DQ rounds it; each int8 layer rounds its own again
        mp = cals["mixed int8"].info["mixed_precision"]
        low, high = mp["input_rounding"]["ranges"]["image"]
        rounded = np.concatenate([runners["fp32"].infer(
            {"image": to_int8_grid(val_images[i:i + b], low, high)})[primary]
            for i in range(0, len(val_images), b)])
        floor = sample_frame(reference, rounded, None, "classification")
        rows[INPUT_ROUNDED] = (check_frame(floor, thresholds)[1], None)

        x = val_images[:b]
        tx = torch.from_numpy(x)

        def eager_call() -> None:
            with torch.inference_mode():
                model(tx)

        timed = {"PyTorch eager fp32": time_calls(eager_call, args.iterations, args.warmup, b, "")}
        for n, runner in runners.items():
            timed[f"onnxruntime {n}"] = time_calls(lambda r=runner: r.infer({"image": x}),
                                                   args.iterations, args.warmup, b, "")

        print(f"MobileNetV2 (ImageNet weights), natural 224x224 crops of scikit-learn's sample "
              f"photos; batch {b}, {torch.get_num_threads()} threads, target {target}; "
              f"{args.iterations} timed iterations after {args.warmup} warm-up")
        print(f"validation: {args.validation} crops; calibration: {cals['int8'].info['samples']} "
              f"crops ({args.method}); mixed: {cals['mixed int8'].info['samples']} calibrated + "
              f"{mp['holdout_samples']} held out; gate {thresholds}")
        print(f"{'engine':<26} | {'top-1 agr':>9} | {'min cos':>8} | {'p50 ms':>8} | "
              f"{'img/s':>7} | {'vs eager':>8} | {'vs fp32 eng':>11}")
        print("-" * 94)
        eager_tp = timed["PyTorch eager fp32"]["throughput"]
        fp32_tp = timed["onnxruntime fp32"]["throughput"]
        for name, (m, _) in rows.items():
            if name == INPUT_ROUNDED:
                print(f"{name:<26} | {m['top1_agreement']:>9.4f} | {m['min_cosine']:>8.4f} | "
                      "(the floor: one 8-bit rounding, of the input alone)")
                continue
            t = timed[name]
            print(f"{name:<26} | {m['top1_agreement']:>9.4f} | {m['min_cosine']:>8.4f} | "
                  f"{t['p50_ms']:>8.1f} | {t['throughput']:>7.1f} | "
                  f"{t['throughput'] / eager_tp:>7.2f}x | {t['throughput'] / fp32_tp:>10.2f}x")
        print(f"\nplain int8 on the held-out calibration crops: {mp['plain']['metrics']} "
              f"(passed: {mp['plain']['passed']})")
        print(f"mixed precision: {len(mp['float_layers'])} of {mp['quantized_layers']} quantized "
              f"layers kept float ({mp['reason']}); held-out: {mp.get('metrics')}")
        for f in mp["float_layers"]:
            print(f"  float: {f['name']:<40} {f['op_type']:<8} sensitivity {f['sensitivity']:.4g}")
        # what each share of float layers bought on the held-out crops: the search's frontier
        best: dict[int, dict] = {}
        for t in mp.get("tried", []):
            if t["float"] not in best or (t["passed"], t["metrics"]["top1_agreement"]) > \
                    (best[t["float"]]["passed"], best[t["float"]]["metrics"]["top1_agreement"]):
                best[t["float"]] = t
        print("best candidate per number of float layers (held-out top-1, min cos):")
        for k, t in sorted(best.items()):
            m = t["metrics"]
            print(f"  {k:>3} float ({k / mp['quantized_layers']:>4.0%}): {m['top1_agreement']:.4f}, "
                  f"{m['min_cosine']:.4f}{'  passes' if t['passed'] else ''}")
        print(f"search time: {mp['seconds']:.1f} s ({mp['evaluations']} candidate models); "
              f"calibrate stage: plain int8 {seconds['int8']:.1f} s, mixed int8 "
              f"{seconds['mixed int8']:.1f} s (calibration {cals['mixed int8'].info['calibration_seconds']:.1f} s)")


if __name__ == "__main__":
    main()
