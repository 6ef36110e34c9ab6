"""The tests' TensorRT stand-in, and how a test installs it.

``with use_standin("10.6.0") as trt_state:`` makes this process look like a GPU worker of a
catalog class with TensorRT of that version: ``import tensorrt`` gives the stand-in module
(:mod:`.tensorrt_standin`, names from NVIDIA's real bindings of that version), engine tensors
live in host memory (:mod:`.host_device`, installed through trt-ops's device seam), and
``host_info()`` reports the class's GPU. Everything is restored on exit.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.tensorrt.standin.real_bindings import real_bindings, versions
from tests.tensorrt.standin.tensorrt_standin import StandinState, make_standin

if TYPE_CHECKING:
    from trt_ops.targets.host import GpuInfo

__all__ = ["StandinState", "fake_gpu", "use_standin", "versions"]


def fake_gpu(target: str = "h100") -> GpuInfo:
    """The GPU of a catalog class, as nvidia-smi would describe it on one of its workers."""
    from trt_ops.targets.catalog import get_target
    from trt_ops.targets.host import GpuInfo

    t = get_target(target)
    assert t.gpu_product and t.compute_capability, f"{target} is not a GPU class"
    return GpuInfo(product=t.gpu_product, compute_capability=t.compute_capability,
                   driver_version="", memory_mib=0, uuid="GPU-00000000-0000-0000-0000-standin0000")


@contextlib.contextmanager
def use_standin(version: str, target: str = "h100") -> Iterator[StandinState]:
    """This process as a worker of ``target`` with the TensorRT stand-in of ``version``."""
    from tests.tensorrt.standin.host_device import HostMemoryDevice
    from trt_ops.engines.contract import GpuHardware
    from trt_ops.engines.tensorrt import bindings, device
    from trt_ops.targets import host

    gpu = fake_gpu(target)
    module = make_standin(real_bindings(version), gpu.product, gpu.compute_capability)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "tensorrt", module)
        patch.setattr(host, "gpus", lambda: (gpu,))
        patch.setattr(bindings, "_LOGGER", None)  # a Logger of the bindings of this version
        host.host_info.cache_clear()
        device.install_device(HostMemoryDevice(GpuHardware(
            gpu_product=gpu.product, compute_capability=gpu.compute_capability)))
        try:
            yield module.standin
        finally:
            device.install_device(None)
            host.host_info.cache_clear()
