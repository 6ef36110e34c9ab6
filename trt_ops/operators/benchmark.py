from __future__ import annotations

from typing import Any

from trt_ops.operators.base import TrtOpsBaseOperator, manifest, trt_template_fields


class BenchmarkEngineOperator(TrtOpsBaseOperator):
    """Measures an engine's latency and throughput per batch size beside PyTorch eager and
    torch.compile, as the spec's benchmark section says
    (:func:`trt_ops.pipeline.steps.benchmark_step`). Run it on the engine's class queue.

    :param engine: the build task's manifest (templated; an XComArg, or mapped)
    :param export: the export task's manifest (templated)
    """

    template_fields = trt_template_fields("engine", "export")

    def __init__(self, *, engine: Any, export: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.export = export

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import benchmark_step

        engine = manifest(self.engine, "engine")
        self.check_worker(engine.spec["target"])  # timings on other hardware would mislead
        return self.finish(benchmark_step(self.pipeline_spec, self.artifact_store(), engine,
                                          manifest(self.export, "export")))
