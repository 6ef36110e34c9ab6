"""A device for the TensorRT stand-in: engine tensors in host memory, no GPU. Tests only.

Installed with :func:`trt_ops.engines.tensorrt.device.install_device` next to the stand-in
module, so the real runner binds real addresses (numpy buffers) that the stand-in's execution
context reads inputs from and writes outputs to. Streams are synchronous; ``gpu()`` reports the
GPU that the test's fake host claims.
"""

from __future__ import annotations

import itertools

import numpy as np

from trt_ops.engines.contract import GpuHardware
from trt_ops.engines.tensorrt.device import Buffer, Device, Stream

_handles = itertools.count(1)


class HostStream(Stream):
    def __init__(self) -> None:
        self.handle = next(_handles)

    def synchronize(self) -> None:
        """Work on a host stream is done when it returns."""


class HostBuffer(Buffer):
    def __init__(self, nbytes: int) -> None:
        self.array = np.zeros(max(nbytes, 1), dtype=np.uint8)
        self.ptr = int(self.array.ctypes.data)
        self.nbytes = nbytes


class HostMemoryDevice(Device):
    """Host memory standing in for a GPU's, for the TensorRT stand-in in tests."""

    name = "host memory (the tests' stand-in for a GPU)"

    def __init__(self, gpu: GpuHardware) -> None:
        self._gpu = gpu
        self.allocations = 0

    def unavailable_reason(self) -> str | None:
        return None

    def gpu(self) -> GpuHardware:
        return self._gpu

    def stream(self) -> Stream:
        return HostStream()

    def alloc(self, nbytes: int, stream: Stream) -> Buffer:
        self.allocations += 1
        return HostBuffer(nbytes)

    def upload(self, buffer: Buffer, array: np.ndarray, stream: Stream) -> None:
        assert isinstance(buffer, HostBuffer) and array.flags.c_contiguous
        buffer.array[:array.nbytes] = array.reshape(-1).view(np.uint8)

    def download(self, buffer: Buffer, nbytes: int, stream: Stream) -> np.ndarray:
        assert isinstance(buffer, HostBuffer)
        return buffer.array[:nbytes].copy()

    def synchronize(self) -> None:
        """Nothing is ever pending."""
