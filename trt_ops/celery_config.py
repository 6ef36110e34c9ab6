"""Celery settings for trt-ops workers: Airflow's defaults, plus the stages' libraries imported
once, when the worker starts.

Each Airflow task runs in a process forked from its Celery worker. Without this, every task
imports torch, onnxruntime, onnx and Great Expectations again, seconds per task that add up over
the DAG's twenty-odd tasks. Point the workers at it:

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=trt_ops.celery_config.CELERY_CONFIG
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "trt_ops.worker_preload"],
}
