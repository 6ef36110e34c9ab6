from __future__ import annotations

from typing import Any

from trt_ops.operators.base import (
    TrtOpsBaseOperator,
    as_inputs,
    manifest,
    native,
    trt_template_fields,
)


class BenchmarkEngineOperator(TrtOpsBaseOperator):
    """Measures an engine's latency and throughput per batch size, and PyTorch's for comparison
    (:func:`trt_ops.benchmark.benchmark_engine`). Run it on the engine's class queue.

    :param engine: the build task's manifest (templated; an XComArg, or mapped)
    :param export: the export task's manifest (templated)
    :param inputs: the model inputs (templated)
    :param batch_sizes: batch sizes to time (templated)
    :param iterations: timed calls per batch size (templated)
    :param warmup: untimed calls first (templated)
    :param streams: concurrent streams (templated)
    """

    template_fields = trt_template_fields("engine", "export", "inputs", "batch_sizes",
                                          "iterations", "warmup", "streams")

    def __init__(self, *, engine: Any, export: Any, inputs: Any, batch_sizes: Any = (1, 32),
                 iterations: int | str = 50, warmup: int | str = 10, streams: int | str = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.export = export
        self.inputs = inputs
        self.batch_sizes = batch_sizes
        self.iterations = iterations
        self.warmup = warmup
        self.streams = streams

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.benchmark import benchmark_engine

        engine = manifest(self.engine, "engine")
        self.check_worker(engine.spec["target"])  # timings on other hardware would mislead
        result = benchmark_engine(
            engine, manifest(self.export, "export"),
            as_inputs(self.inputs), self.artifact_store(),
            batch_sizes=[int(b) for b in native(self.batch_sizes, "batch_sizes")],
            iterations=int(self.iterations), warmup=int(self.warmup), streams=int(self.streams))
        return self.finish(result)
