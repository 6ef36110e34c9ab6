"""Benchmark stage: latency percentiles and throughput per batch size, engine beside reference.

The reference is the source model in PyTorch eager FP32 on the same machine. Warm-up runs
are excluded. With ``streams > 1`` the engine also runs that many concurrent streams.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from trt_ops.cache import run_cached
from trt_ops.digest import cache_key
from trt_ops.engines import get_backend
from trt_ops.export import sample_feeds
from trt_ops.hardware import host_info
from trt_ops.manifest import Manifest
from trt_ops.progress import track
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore

STAGE = "benchmark"


def time_calls(fn: Callable[[], Any], iterations: int, warmup: int, batch: int,
               description: str) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    latencies = []
    for _ in track(range(iterations), description):
        start = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - start)
    ms = np.array(latencies) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "throughput": float(batch * len(ms) / (ms.sum() / 1e3))}


def torch_reference(source: dict[str, Any], names: Sequence[str]) -> Callable[[dict[str, np.ndarray]], Any]:
    """The source model as PyTorch eager FP32 (on the GPU when there is one)."""
    import torch

    from trt_ops.sources import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(source).to(device)

    def run(feeds: dict[str, np.ndarray]) -> Any:
        with torch.inference_mode():
            out = model(*(torch.from_numpy(feeds[n]).to(device) for n in names))
            if device == "cuda":
                torch.cuda.synchronize()
            return out

    return run


def benchmark_engine(engine: Manifest, export: Manifest, inputs: Sequence[InputSpec],
                     store: ArtifactStore, *, batch_sizes: Sequence[int] = (1, 32),
                     iterations: int = 50, warmup: int = 10, streams: int = 1,
                     reference: bool = True) -> Manifest:
    host = host_info()
    metadata = engine.info["metadata"]
    backend = get_backend(engine.spec["backend"])
    backend.check_compatible(metadata, host)
    spec = {"batch_sizes": list(batch_sizes), "iterations": iterations, "warmup": warmup,
            "streams": streams, "reference": reference, "precision": engine.spec["precision"],
            "target": engine.spec["target"]}
    key = cache_key(STAGE, engine=engine.artifact("engine").sha256, host=host.hostname, **spec)
    names = [i.name for i in inputs]

    def compute() -> Manifest:
        ref_run = torch_reference(export.info["source"], names) if reference else None
        rows = []
        with backend.load(store.fetch(engine.artifact("engine")), metadata) as runner:
            for batch in batch_sizes:
                feeds = sample_feeds(inputs, batch)
                row: dict[str, Any] = {"batch_size": batch}
                row["engine"] = time_calls(lambda: runner.infer(feeds), iterations, warmup, batch,
                                           f"engine {engine.spec['precision']} batch {batch}")
                if streams > 1:
                    seconds = runner.run_concurrent(feeds, streams, iterations)
                    row["engine"]["throughput_streams"] = batch * iterations / seconds
                if ref_run:
                    row["reference"] = time_calls(lambda: ref_run(feeds), iterations, warmup,
                                                  batch, f"pytorch fp32 batch {batch}")
                    row["speedup"] = row["engine"]["throughput"] / row["reference"]["throughput"]
                rows.append(row)
        largest = rows[-1]
        metrics = {"latency_p50_ms": largest["engine"]["p50_ms"],
                   "latency_p99_ms": largest["engine"]["p99_ms"],
                   "throughput": largest["engine"]["throughput"],
                   "batch_size": largest["batch_size"]}
        if "speedup" in largest:
            metrics["speedup"] = largest["speedup"]
        return Manifest(stage=STAGE, key=key, spec=spec, metrics=metrics,
                        info={"rows": rows, "worker": host.hostname, "cpu_model": host.cpu_model,
                              "gpus": [g.product for g in host.gpus]},
                        inputs={"engine": engine.artifact("engine").sha256})

    return run_cached(store, STAGE, key, compute)
