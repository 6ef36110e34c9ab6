"""The accuracy gate: thresholds over the per-sample validation frame.

Threshold names and their direction:
  top1_agreement  (min)  share of samples where engine and reference agree on the top class
  min_cosine      (min)  smallest per-sample cosine similarity of engine and reference outputs
  mean_cosine     (min)  mean per-sample cosine similarity
  max_abs_error   (max)  largest absolute error over all samples
  mean_abs_error  (max)  mean of the per-sample mean absolute errors
  accuracy_drop   (max)  reference accuracy minus engine accuracy, where labels exist
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from trt_ops.errors import SpecError

# threshold -> (frame statistic, "min" if the observed value must be >= threshold else "max")
CHECKS: dict[str, tuple[str, str]] = {
    "top1_agreement": ("top1_agree.mean", "min"),
    "min_cosine": ("cosine.min", "min"),
    "mean_cosine": ("cosine.mean", "min"),
    "max_abs_error": ("max_abs_error.max", "max"),
    "mean_abs_error": ("mean_abs_error.mean", "max"),
    "accuracy_drop": ("accuracy_drop", "max"),
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

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [dataclasses.asdict(c) for c in self.checks]}


def statistic(frame: pd.DataFrame, name: str) -> float | None:
    """One of the frame statistics the thresholds refer to; None when it does not apply."""
    if name == "accuracy_drop":
        if "engine_correct" not in frame or frame["engine_correct"].isna().all():
            return None
        return float(frame["ref_correct"].mean() - frame["engine_correct"].mean())
    column, _, agg = name.partition(".")
    if column not in frame or frame[column].isna().all():
        return None
    return float(getattr(frame[column].dropna(), agg)())


def evaluate_gate(frame: pd.DataFrame, thresholds: dict[str, float]) -> GateResult:
    checks = []
    for name, threshold in sorted(thresholds.items()):
        if name not in CHECKS:
            raise SpecError(f"unknown accuracy threshold {name!r}", f"use one of {sorted(CHECKS)}")
        stat, direction = CHECKS[name]
        observed = statistic(frame, stat)
        if observed is None:  # e.g. top-1 for an embedding model: not applicable, not failed
            continue
        passed = observed >= threshold if direction == "min" else observed <= threshold
        checks.append(Check(name, passed, round(observed, 6), threshold, direction))
    return GateResult(all(c.passed for c in checks), checks)
