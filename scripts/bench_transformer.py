"""MiniLM (all-MiniLM-L6-v2) on this machine's CPU: PyTorch eager FP32 beside the FP32 and int8
onnxruntime engines, in one run; plus the int8 engine's cosine to FP32 on real sentences.

Engines come from the pipeline's own stages on the example's spec (dynamic batch and sequence
axes; int8 with the recipe chosen for the graph). Each round times every runner once, in turn,
at the same random token ids: the machine is shared and noisy, so compare rows of one round.
Needs the nlp extra. Usage:

    .venv/bin/python scripts/bench_transformer.py [--batch 16] [--sequence 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sequence", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256, help="validation sentences")
    args = parser.parse_args()

    import torch

    from trt_ops.data.synthetic import sample_feeds
    from trt_ops.engines import get_backend
    from trt_ops.examples import minilm
    from trt_ops.models.sources import load_model
    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec
    from trt_ops.stages.benchmark import time_calls
    from trt_ops.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(minilm.prepare(Path(tmp), calibration=args.samples,
                                        validation=args.samples))
        store = open_store(spec.store)
        target = steps.default_targets()[0]
        export = steps.export_step(spec, store)
        engines, accuracy = {}, {}
        for precision in ("fp32", "int8"):
            cal = steps.calibrate_step(spec, store, export, precision, "onnxruntime")
            engines[precision] = steps.build_step(spec, store, cal, target)
            accuracy[precision] = steps.validate_step(spec, store, engines[precision],
                                                      export).metrics
            if precision == "int8":
                recipe = cal.spec["recipe"]
        model = load_model(spec.model.source())
        backend = get_backend("onnxruntime")
        from trt_ops.engines.contract import engine_from_metadata

        # load() takes the engine contract, not its JSON record
        runners = {p: backend.load(store.fetch(m.artifact("engine")),
                                   engine_from_metadata(m.info["metadata"]))
                   for p, m in engines.items()}
        feeds = sample_feeds(spec.model.inputs, args.batch, sizes={"sequence": args.sequence},
                             ranges={"input_ids": (1000, 29999), "attention_mask": (1, 1),
                                     "token_type_ids": (0, 0)})
        tensors = [torch.from_numpy(feeds[i.name]) for i in spec.model.inputs]

        def eager() -> None:
            with torch.inference_mode():
                model(*tensors)

        calls = {"PyTorch eager fp32": eager}
        for p, runner in runners.items():
            calls[f"onnxruntime {p} engine"] = lambda r=runner: r.infer(feeds)
        print(f"all-MiniLM-L6-v2, batch {args.batch}, sequence {args.sequence}, "
              f"{torch.get_num_threads()} threads, target {target}; {args.iterations} timed "
              f"calls after {args.warmup} warm-up, {args.rounds} rounds")
        print(f"int8 recipe: {recipe['name']} ({len(recipe['settings'].get('keep_float', []))} "
              "MatMuls kept float)")
        print(f"{'round':>5} | {'runner':<26} | {'p50 ms':>9} | {'p99 ms':>9} | "
              f"{'sent/s':>8} | {'vs PyTorch':>10}")
        print("-" * 82)
        for r in range(1, args.rounds + 1):
            rows = {name: time_calls(fn, args.iterations, args.warmup, args.batch, "")
                    for name, fn in calls.items()}
            base = rows["PyTorch eager fp32"]["throughput"]
            for name, t in rows.items():
                print(f"{r:>5} | {name:<26} | {t['p50_ms']:>9.1f} | {t['p99_ms']:>9.1f} | "
                      f"{t['throughput']:>8.1f} | {t['throughput'] / base:>9.2f}x")
        for p, m in accuracy.items():
            print(f"{p} engine vs FP32 on {int(m['samples'])} sentences "
                  f"({m['lengths']['sequence'][0]}..{m['lengths']['sequence'][1]} tokens): "
                  f"min cosine {m['min_cosine']:.4f}, mean {m['mean_cosine']:.4f}")


if __name__ == "__main__":
    main()
