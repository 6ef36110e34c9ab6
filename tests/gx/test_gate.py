"""The accuracy gate as a GX suite, and the reports stored with each validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trt_ops.errors import SpecError
from trt_ops.quality.gate import evaluate_gate


def _frame(n: int = 200, disagree: int = 0, err: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    agree = np.ones(n)
    agree[:disagree] = 0.0
    return pd.DataFrame({"sample": np.arange(n), "max_abs_error": rng.uniform(0, err, n),
                         "mean_abs_error": rng.uniform(0, err / 10, n),
                         "cosine": 1 - rng.uniform(0, 1e-4, n), "top1_agree": agree,
                         "ref_correct": np.ones(n), "engine_correct": agree})


def test_gate_passes_and_fails_on_each_threshold() -> None:
    thresholds = {"top1_agreement": 0.98, "accuracy_drop": 0.02, "min_cosine": 0.99,
                  "max_abs_error": 0.05, "mean_abs_error": 0.05}
    good = evaluate_gate(_frame(), thresholds)
    assert good.passed and [c.name for c in good.checks] == sorted(thresholds)
    bad = evaluate_gate(_frame(disagree=10, err=0.2), thresholds)
    failed = {c.name: c.observed for c in bad.checks if not c.passed}
    assert failed.keys() == {"top1_agreement", "accuracy_drop", "max_abs_error"}
    assert failed["top1_agreement"] == pytest.approx(0.95) and failed["accuracy_drop"] == pytest.approx(0.05)
    assert bad.to_dict()["checks"][0] == {"name": "accuracy_drop", "passed": False,
                                          "observed": pytest.approx(0.05), "threshold": 0.02,
                                          "direction": "max"}


def test_nan_engine_output_fails_rather_than_being_skipped() -> None:
    frame = _frame()
    frame.loc[3, ["max_abs_error", "cosine"]] = np.nan
    gate = evaluate_gate(frame, {"max_abs_error": 0.05, "min_cosine": 0.99})
    assert not gate.passed and all(not c.passed for c in gate.checks)


def test_embedding_frame_skips_top1_and_unknown_names_are_refused() -> None:
    frame = _frame().drop(columns=["top1_agree", "ref_correct", "engine_correct"])
    gate = evaluate_gate(frame, {"top1_agreement": 0.99, "mean_cosine": 0.999})
    assert [c.name for c in gate.checks] == ["mean_cosine"] and gate.passed
    with pytest.raises(SpecError, match="top1_agrement"):
        evaluate_gate(frame, {"top1_agrement": 0.99})


def test_validation_stores_gate_data_docs_and_plots(digits_run, tmp_path: Path) -> None:
    from trt_ops.reports.plots import latency_plot
    from trt_ops.store import open_store

    attempt = digits_run.attempts[0]
    artifacts = attempt.validation.artifacts
    assert {"report", "error_histogram", "class_agreement", "gate_data_docs"} <= set(artifacts)
    page = open_store(digits_run.store).fetch(artifacts["gate_data_docs"]).read_text()
    assert "top1_agree" in page and "cosine" in page
    png = latency_plot(attempt.benchmark.info["rows"], tmp_path / "latency.png", "digits int8")
    assert png.read_bytes()[:4] == b"\x89PNG"
