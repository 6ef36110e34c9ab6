"""Where a TensorRT engine's tensors live and how its work is ordered: the runner's device seam.

The runner and the builder never touch CUDA directly; they ask the current :class:`Device` for
the GPU's facts, for streams, for buffers (raw bytes at a device address that TensorRT reads and
writes) and for copies between host arrays and those buffers. On GPU workers that is
:class:`CudaDevice` (PyTorch's CUDA allocator and streams), the only device production code
creates. :func:`install_device` replaces it for the whole process: the test suite installs a
host-memory device together with its TensorRT stand-in, so CI runs the real runner logic
(binding shapes, profiles, contexts per stream, the multi-stream benchmark) without a GPU.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_ops.errors import EngineError

if TYPE_CHECKING:
    from trt_ops.engines.contract import GpuHardware
    from trt_ops.targets.host import GpuInfo

log = logging.getLogger(__name__)


class Stream(ABC):
    """An ordered queue of device work; ``handle`` is what ``execute_async_v3`` takes."""

    handle: int

    @abstractmethod
    def synchronize(self) -> None: ...


class Buffer(ABC):
    """``nbytes`` of device memory at address ``ptr``."""

    ptr: int
    nbytes: int


class Device(ABC):
    """The memory and streams that engines run on; see the module docstring."""

    name: str

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when engines can run here, else why not."""

    @abstractmethod
    def gpu(self) -> GpuHardware:
        """The facts of the GPU this process builds on and runs engines on."""

    @abstractmethod
    def stream(self) -> Stream: ...

    @abstractmethod
    def alloc(self, nbytes: int, stream: Stream) -> Buffer: ...

    @abstractmethod
    def upload(self, buffer: Buffer, array: np.ndarray, stream: Stream) -> None:
        """Enqueues a copy of a C-contiguous host ``array`` into ``buffer`` on ``stream``."""

    @abstractmethod
    def download(self, buffer: Buffer, nbytes: int, stream: Stream) -> np.ndarray:
        """The first ``nbytes`` of ``buffer`` as host bytes (uint8), after ``stream``'s work."""

    @abstractmethod
    def synchronize(self) -> None:
        """Waits for all work on this device."""


class _CudaStream(Stream):
    def __init__(self, stream: Any) -> None:
        self.torch_stream = stream
        self.handle = int(stream.cuda_stream)

    def synchronize(self) -> None:
        self.torch_stream.synchronize()


class _CudaBuffer(Buffer):
    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor
        self.ptr = int(tensor.data_ptr())
        self.nbytes = int(tensor.numel())


class CudaDevice(Device):
    """PyTorch's current CUDA device: its caching allocator and its streams."""

    name = "cuda"

    def unavailable_reason(self) -> str | None:
        import torch

        if not torch.cuda.is_available():
            return ("no CUDA device is visible to PyTorch: run on a GPU worker with the NVIDIA "
                    "driver and a CUDA build of torch")
        return None

    def _device(self) -> Any:
        import torch

        return torch.device("cuda", torch.cuda.current_device())

    def gpu(self) -> GpuHardware:
        import torch

        from trt_ops.engines.contract import GpuHardware
        from trt_ops.targets.host import gpus

        props = torch.cuda.get_device_properties(self._device())
        smi = visible_gpu(str(getattr(props, "uuid", "")), gpus())
        return GpuHardware(
            gpu_product=smi.product if smi else props.name,
            compute_capability=f"{props.major}.{props.minor}",
            sm_count=props.multi_processor_count,
            driver_version=smi.driver_version if smi else None,
            cuda_version=torch.version.cuda)

    def stream(self) -> Stream:
        import torch

        return _CudaStream(torch.cuda.Stream(self._device()))

    def alloc(self, nbytes: int, stream: Stream) -> Buffer:
        import torch

        assert isinstance(stream, _CudaStream)
        with torch.cuda.stream(stream.torch_stream):  # allocated on the stream that uses it
            return _CudaBuffer(torch.empty(max(nbytes, 1), dtype=torch.uint8, device=self._device()))

    def upload(self, buffer: Buffer, array: np.ndarray, stream: Stream) -> None:
        import torch

        assert isinstance(buffer, _CudaBuffer) and isinstance(stream, _CudaStream)
        host = torch.from_numpy(array.reshape(-1).view(np.uint8))
        with torch.cuda.stream(stream.torch_stream):
            buffer.tensor[:host.numel()].copy_(host, non_blocking=True)

    def download(self, buffer: Buffer, nbytes: int, stream: Stream) -> np.ndarray:
        import torch

        assert isinstance(buffer, _CudaBuffer) and isinstance(stream, _CudaStream)
        with torch.cuda.stream(stream.torch_stream):
            host = buffer.tensor[:nbytes].cpu()  # waits for the stream's work before it copies
        result: np.ndarray = host.numpy()
        return result

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self._device())


def visible_gpu(uuid: str, listed: tuple[GpuInfo, ...]) -> GpuInfo | None:
    """The nvidia-smi entry of the GPU whose UUID CUDA reports, or None.

    nvidia-smi lists every GPU of the machine in PCI order; CUDA numbers only the visible ones
    (``CUDA_VISIBLE_DEVICES``), fastest first by default. Only the UUID names the same GPU in both.
    """
    want = uuid.lower().removeprefix("gpu-")
    for gpu in listed:
        if want and gpu.uuid.lower().removeprefix("gpu-") == want:
            return gpu
    return None


_installed: Device | None = None
_cuda: CudaDevice | None = None


def install_device(device: Device | None) -> None:
    """Replaces the device of this process (None: back to CUDA). The test suite installs its
    host-memory device with its TensorRT stand-in; nothing in trt-ops calls this."""
    global _installed
    if device is not None:
        log.warning("TensorRT engines in this process run on %s, not on CUDA", device.name)
    _installed = device


def current_device() -> Device:
    global _cuda
    if _installed is not None:
        return _installed
    if _cuda is None:
        _cuda = CudaDevice()
    return _cuda


def require_device() -> Device:
    """The current device, or an :class:`EngineError` saying why engines cannot run here."""
    device = current_device()
    reason = device.unavailable_reason()
    if reason:
        raise EngineError(f"cannot run TensorRT engines here: {reason}",
                          "run this task on a worker of the target's GPU queue")
    return device
