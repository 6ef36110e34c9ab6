"""Imported once by a trt-ops Celery worker at start-up (see :mod:`trt_ops.celery_config`):
the libraries the stages need, and Airflow's task runner and DAG parser, so task processes
forked from the worker start with them."""

import airflow.dag_processing.dagbag
import airflow.sdk.execution_time.task_runner  # noqa: F401
import great_expectations  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import torch  # noqa: F401

import trt_ops.operators.benchmark
import trt_ops.operators.build
import trt_ops.operators.calibrate
import trt_ops.operators.check_data
import trt_ops.operators.export
import trt_ops.operators.fallback
import trt_ops.operators.publish
import trt_ops.operators.register
import trt_ops.operators.validate
import trt_ops.stages.benchmark
import trt_ops.stages.build
import trt_ops.stages.calibrate
import trt_ops.stages.check_data
import trt_ops.stages.export
import trt_ops.stages.validate  # noqa: F401
