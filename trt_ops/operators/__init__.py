"""Airflow operators, one per pipeline stage. Each is thin: ``execute`` turns the task's
context and templated arguments into a call of the stage function in :mod:`trt_ops`, and
returns the stage's manifest (a JSON dict) as the task's XCom value. Stages are imported inside
``execute`` so parsing a DAG stays fast, and they are idempotent, so a retried or cleared task
finds its output in the store (a cache hit).

Importing this package is cheap: the operator classes load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_OPERATORS = {
    "ExportOnnxOperator": "export",
    "CheckDataOperator": "check_data",
    "CalibrateOperator": "calibrate",
    "BuildEngineOperator": "build",
    "ValidateEngineOperator": "validate",
    "BenchmarkEngineOperator": "benchmark",
    "PrecisionFallbackOperator": "fallback",
    "RegisterEnginesOperator": "register",
    "PublishTritonOperator": "publish",
}

__all__ = list(_OPERATORS)


def __getattr__(name: str) -> Any:
    if name in _OPERATORS:
        return getattr(importlib.import_module(f"trt_ops.operators.{_OPERATORS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
