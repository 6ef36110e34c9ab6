"""Small helpers around the ``tensorrt`` module shared by the builder and the runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorrt as trt

    from trt_ops.engines.contract import TensorSpec


_LOGGER: trt.ILogger | None = None


def trt_logger() -> trt.ILogger:
    import tensorrt as trt

    global _LOGGER
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def host_bytes(memory: trt.IHostMemory) -> bytes:
    # the stub omits __buffer__, but IHostMemory implements the buffer protocol at runtime
    data: bytes = bytes(memory)  # type: ignore[call-overload]
    return data


def dims_list(dims: trt.Dims) -> list[int]:
    return [int(dims[i]) for i in range(len(dims))]


# TensorRT DataType name -> numpy dtype name, as the engine contract records I/O tensors
CONTRACT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
                   "UINT8": "uint8", "INT32": "int32", "INT64": "int64", "BOOL": "bool",
                   "FP8": "float8_e4m3fn", "INT4": "int4"}


def tensor_spec(tensor: trt.ITensor) -> TensorSpec:
    from trt_ops.engines.contract import TensorSpec

    kind = tensor.dtype.name
    return TensorSpec(name=tensor.name, dtype=CONTRACT_DTYPES.get(kind, kind.lower()),
                      shape=dims_list(tensor.shape))
