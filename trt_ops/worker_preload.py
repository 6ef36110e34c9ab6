"""Imported once by a trt-ops Celery worker at start-up (see :mod:`trt_ops.celery_config`):
the libraries the stages need, so task processes forked from the worker start with them."""

import great_expectations  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import torch  # noqa: F401

import trt_ops.stages.benchmark
import trt_ops.stages.build
import trt_ops.stages.calibrate
import trt_ops.stages.check_data
import trt_ops.stages.export
import trt_ops.stages.validate  # noqa: F401
