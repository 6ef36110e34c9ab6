"""Benchmark stage: latency percentiles and throughput per shape, engine beside PyTorch.

A row per batch size and per combination of the other dynamic axes' sizes (e.g. sequence 32
and 128, from ``benchmark.dims``; default: each axis's opt size).

Two references run on the same machine: the source model in PyTorch eager FP32, and the same
model under ``torch.compile`` (default mode), which is what a user who wants speed without
trt-ops reaches for. All are timed the same way (:data:`TIMING`): each timed call takes numpy
inputs on the host and returns numpy outputs on the host, so host-to-device and device-to-host
copies are inside every latency, for the engine and for PyTorch alike. Warm-up runs (and
torch.compile's compilation) are excluded. The engine and the references are loaded one after
the other, each freed before the next: a large model is held once. With ``streams > 1`` the
engine also runs that many concurrent streams; that throughput (``throughput_streams``) is on
the device only, inputs staged once per stream before timing, and has no PyTorch counterpart. A
latency-against-batch-size plot is stored with the manifest. For an ONNX source there is no
PyTorch model: the reference is that ONNX in FP32 on onnxruntime."""

from __future__ import annotations

import functools
import gc
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_ops.console import track
from trt_ops.data.synthetic import sample_feeds
from trt_ops.engines import get_backend
from trt_ops.engines.contract import engine_from_metadata
from trt_ops.models.onnx import local_engine
from trt_ops.models.reference import load_reference
from trt_ops.reports.plots import latency_plot
from trt_ops.spec import InputSpec
from trt_ops.spec import axes as spec_axes
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest

if TYPE_CHECKING:
    import torch
from trt_ops.targets.host import host_info

STAGE = "benchmark"
log = logging.getLogger("trt_ops")
TIMING = {
    "latency": "host_to_host: numpy inputs in, numpy outputs out, host<->device copies included, "
               "for the engine and the PyTorch references alike",
    "throughput_streams": "device_only: inputs staged once per stream before timing",
}


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


def torch_reference(model: torch.nn.Module, names: Sequence[str],
                    compiled: bool = False) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """The source model in PyTorch FP32 (on the GPU when there is one), eager or compiled,
    host to host.

    Like an engine runner's ``infer``: inputs are copied from numpy to the device, outputs back
    to numpy, so both sides of the comparison pay the same copies.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    if compiled:
        model = torch.compile(model)  # compiled lazily, by the first (warm-up) calls

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = model(*(torch.from_numpy(feeds[n]).to(device) for n in names))
            tensors = out.values() if isinstance(out, dict) else \
                out if isinstance(out, (list, tuple)) else [out]
            return [t.cpu().numpy() for t in tensors]  # the copy back waits for the device

    return run


def onnx_reference(export: Manifest,
                   store: ArtifactStore) -> Callable[[dict[str, np.ndarray]], Any]:
    """The FP32 ONNX on onnxruntime (all graph optimizations): an ONNX source's reference."""
    import onnxruntime as ort

    from trt_ops.models.onnx import local_onnx

    session = ort.InferenceSession(str(local_onnx(export, store)),
                                   providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def _time_reference(run: Callable[[dict[str, np.ndarray]], Any], feeds: dict[str, np.ndarray],
                    iterations: int, warmup: int, batch: int, name: str) -> dict[str, Any]:
    """Times one PyTorch reference; a reference that fails (e.g. torch.compile without a C++
    compiler) is recorded with its error instead of failing the engine's benchmark."""
    label = {"reference": "reference fp32", "torch_compile": "torch.compile fp32"}[name]
    try:
        return time_calls(lambda: run(feeds), iterations, max(warmup, 2), batch,
                          f"{label} batch {batch}")
    except Exception as exc:  # noqa: BLE001 - the engine's figures stand on their own
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("benchmark: %s failed at batch %d: %s", label, batch, reason)
        return {"error": f"{type(exc).__name__}: {reason}"}


def benchmark_engine(engine: Manifest, export: Manifest, inputs: Sequence[InputSpec],
                     store: ArtifactStore, *, batch_sizes: Sequence[int] = (1, 32),
                     iterations: int = 50, warmup: int = 10, streams: int = 1,
                     reference: bool = True, torch_compile: bool = True,
                     dims: Mapping[str, Mapping[str, int]] | None = None,
                     shapes: Mapping[str, Sequence[int]] | None = None) -> Manifest:
    host = host_info()
    contract = engine_from_metadata(engine.info["metadata"], f"the {STAGE} stage's engine")
    backend = get_backend(contract.backend)
    backend.check_compatible(contract, host)
    onnx_source = bool(export.info["source"].get("onnx"))
    sizes = spec_axes.benchmark_shapes(dims or {}, shapes)
    spec = {"batch_sizes": list(batch_sizes), "iterations": iterations, "warmup": warmup,
            "streams": streams, "reference": reference,
            "torch_compile": reference and torch_compile and not onnx_source,
            "precision": engine.spec["precision"], "target": engine.spec["target"],
            "shapes": sizes, "timing": "host_to_host"}
    key = cache_key(STAGE, engine=engine.artifact("engine").sha256, host=host.hostname, **spec)
    names = [i.name for i in inputs]

    def compute() -> Manifest:
        cases = [(s, b) for s in sizes for b in batch_sizes]
        feeds_of = [sample_feeds(inputs, b, sizes=s) for s, b in cases]  # the same for every runtime
        rows: list[dict[str, Any]] = [
            {"batch_size": b, **({"sizes": s} if s else {}),
             "reference_kind": "onnxruntime fp32 (source ONNX)" if onnx_source
             else "pytorch eager fp32"} for s, b in cases]
        # the engine first, then each reference, one at a time and freed before the next: a
        # model over 2 GB is held once, not once per runtime
        with backend.load(local_engine(engine, store), contract) as runner:
            for row, (shape, batch), feeds in zip(rows, cases, feeds_of):
                where = f"batch {batch}" + "".join(f" {k} {v}" for k, v in shape.items())
                row["engine"] = time_calls(functools.partial(runner.infer, feeds), iterations,
                                           warmup, batch,
                                           f"engine {engine.spec['precision']} {where}")
                if streams > 1:
                    seconds = runner.run_concurrent(feeds, streams, iterations)
                    row["engine"]["throughput_streams"] = batch * iterations / seconds
        for name in [n for n, on in (("reference", reference),
                                     ("torch_compile", spec["torch_compile"])) if on]:
            run = (onnx_reference(export, store) if onnx_source else
                   torch_reference(load_reference(export, store), names,
                                   compiled=name == "torch_compile"))
            for row, (_, batch), feeds in zip(rows, cases, feeds_of):
                row[name] = _time_reference(run, feeds, iterations, warmup, batch, name)
            del run
            gc.collect()
        for row in rows:
            if "throughput" in row.get("reference", {}):
                row["speedup"] = row["engine"]["throughput"] / row["reference"]["throughput"]
            if "throughput" in row.get("torch_compile", {}):
                row["speedup_vs_compile"] = (row["engine"]["throughput"]
                                             / row["torch_compile"]["throughput"])
        largest = rows[-1]
        metrics = {"latency_p50_ms": largest["engine"]["p50_ms"],
                   "latency_p99_ms": largest["engine"]["p99_ms"],
                   "throughput": largest["engine"]["throughput"],
                   "batch_size": largest["batch_size"]}
        metrics.update({k: largest[k] for k in ("speedup", "speedup_vs_compile") if k in largest})
        with tempfile.TemporaryDirectory(prefix="trt-ops-benchmark-") as tmp:
            title = f"{engine.spec['precision']} engine for {engine.spec['target']}"
            plot = latency_plot(rows, Path(tmp) / "latency.png", title)
            artifacts = {"latency_plot": store.put_artifact(f"{STAGE}/{key}/latency.png", plot)}
        return Manifest(stage=STAGE, key=key, spec=spec, metrics=metrics, artifacts=artifacts,
                        info={"rows": rows, "timing": TIMING, "worker": host.hostname,
                              "cpu_model": host.cpu_model, "gpus": [g.product for g in host.gpus]},
                        inputs={"engine": engine.artifact("engine").sha256})

    return run_cached(store, STAGE, key, compute)
