"""The accuracy gate: a Great Expectations suite over the per-sample validation frame.

Threshold names, the expectation that checks each, and its direction:
  top1_agreement  (min)  mean of top1_agree: share of samples where engine and reference agree
  min_cosine      (min)  min of cosine: smallest per-sample cosine similarity
  mean_cosine     (min)  mean of cosine
  max_abs_error   (max)  max of max_abs_error: largest absolute error over all samples
  mean_abs_error  (max)  mean of mean_abs_error
  accuracy_drop   (max)  mean of ref_correct - engine_correct, where labels exist
A threshold whose column the frame lacks (top-1 for an embedding model) does not apply.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from trt_ops.errors import SpecError
from trt_ops.quality.gx import run_suite

# threshold -> (frame statistic "column.aggregate", "min" if observed must be >= threshold else "max")
CHECKS: dict[str, tuple[str, str]] = {
    "top1_agreement": ("top1_agree.mean", "min"),
    "min_cosine": ("cosine.min", "min"),
    "mean_cosine": ("cosine.mean", "min"),
    "max_abs_error": ("max_abs_error.max", "max"),
    "mean_abs_error": ("mean_abs_error.mean", "max"),
    "accuracy_drop": ("accuracy_drop.mean", "max"),
}


@dataclasses.dataclass
class Check:
    name: str
    passed: bool
    observed: float | None
    threshold: float
    direction: str

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        op = ">=" if self.direction == "min" else "<="
        return f"{verdict} | {self.name}: {self.observed} (needs {op} {self.threshold})"


@dataclasses.dataclass
class GateResult:
    passed: bool
    checks: list[Check]
    gx_result: Any = dataclasses.field(default=None, repr=False, compare=False)  # for Data Docs

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [dataclasses.asdict(c) for c in self.checks]}


# A NaN in the frame comes from a NaN or Inf engine output: it counts as the worst value, since
# GX (like pandas) would otherwise skip it and let a broken engine pass.
WORST = {"top1_agree": 0.0, "cosine": -1.0, "max_abs_error": float("inf"),
         "mean_abs_error": float("inf"), "accuracy_drop": 1.0}


def gate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the gate reads; accuracy_drop per sample is ref_correct - engine_correct."""
    columns = {c: frame[c] for c in ("top1_agree", "cosine", "max_abs_error", "mean_abs_error")
               if c in frame}
    if "engine_correct" in frame:
        columns["accuracy_drop"] = frame["ref_correct"] - frame["engine_correct"]
    return pd.DataFrame(columns).astype(float).fillna(WORST)


def _expectation(gx: Any, name: str, threshold: float) -> Any:
    column, agg = CHECKS[name][0].split(".")
    bound = {"min_value" if CHECKS[name][1] == "min" else "max_value": threshold}
    cls = {"mean": gx.expectations.ExpectColumnMeanToBeBetween,
           "min": gx.expectations.ExpectColumnMinToBeBetween,
           "max": gx.expectations.ExpectColumnMaxToBeBetween}[agg]
    return cls(column=column, meta={"threshold": name}, **bound)


def evaluate_gate(frame: pd.DataFrame, thresholds: dict[str, float]) -> GateResult:
    import great_expectations as gx

    unknown = sorted(set(thresholds) - set(CHECKS))
    if unknown:
        raise SpecError(f"unknown accuracy thresholds {unknown}", f"use names from {sorted(CHECKS)}")
    data = gate_frame(frame)
    applicable = {n: t for n, t in sorted(thresholds.items()) if CHECKS[n][0].split(".")[0] in data}
    if not applicable:
        return GateResult(True, [])
    result = run_suite(data, [_expectation(gx, n, float(t)) for n, t in applicable.items()],
                       "accuracy_gate")
    checks = []
    for r in result.results:
        name = r.expectation_config.meta["threshold"]
        observed = r.result.get("observed_value")
        observed = None if observed is None else round(float(observed), 6)
        checks.append(Check(name, bool(r.success), observed, applicable[name], CHECKS[name][1]))
    checks.sort(key=lambda c: c.name)
    return GateResult(all(c.passed for c in checks), checks, result)


def check_frame(frame: pd.DataFrame, thresholds: dict[str, float]) -> tuple[bool, dict[str, float]]:
    """The gate's verdict and observed values without Great Expectations: the same statistics
    and directions (:data:`CHECKS`), cheap enough for a search that checks many candidates."""
    data = gate_frame(frame)
    observed: dict[str, float] = {}
    passed = True
    for name, threshold in sorted(thresholds.items()):
        column, agg = CHECKS[name][0].split(".")
        if column not in data:
            continue
        value = float(getattr(data[column], agg)())
        observed[name] = round(value, 6)
        passed &= value >= threshold if CHECKS[name][1] == "min" else value <= threshold
    return bool(passed), observed
