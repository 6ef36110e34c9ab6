"""The benchmark stage: an engine beside PyTorch eager and torch.compile, and its latency plot."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from trt_ops.spec import load_spec
from trt_ops.stages.benchmark import benchmark_engine
from trt_ops.store import open_store


def test_engine_is_timed_beside_eager_and_torch_compile(digits_run, digits_dir):
    from PIL import Image

    attempt = next(a for a in digits_run.attempts if a.precision == "int8")
    inputs = load_spec(digits_dir / "pipeline.yaml").model.inputs
    result = benchmark_engine(attempt.build, digits_run.export, inputs, open_store(digits_run.store),
                              batch_sizes=[1, 8], iterations=5, warmup=2, torch_compile=True)
    rows = result.info["rows"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    for row in rows:
        for who in ("engine", "reference", "torch_compile"):
            assert row[who]["p50_ms"] > 0 and row[who]["throughput"] > 0, (who, row)
        assert row["speedup"] > 0 and row["speedup_vs_compile"] > 0
    assert result.metrics["speedup_vs_compile"] == rows[-1]["speedup_vs_compile"]
    plot = Path(urlparse(result.artifact("latency_plot").uri).path)
    with Image.open(plot) as image:
        assert image.size[0] > 300 and image.size[1] > 200
