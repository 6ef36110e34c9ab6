"""Engine backends by name. Each is imported only when asked for."""

from __future__ import annotations

import importlib

from trt_ops.engines.base import EngineBackend
from trt_ops.errors import SpecError

_BACKENDS = {
    "onnxruntime": "trt_ops.engines.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "trt_ops.engines.tensorrt.backend:TensorRTBackend",
}


def get_backend(name: str) -> EngineBackend:
    try:
        module, cls = _BACKENDS[name].split(":")
    except KeyError:
        raise SpecError(f"unknown engine backend {name!r}", f"use one of {sorted(_BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)()
