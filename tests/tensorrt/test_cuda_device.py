"""The CUDA device of GPU workers (trt_ops.engines.tensorrt.device.CudaDevice), on a real GPU.

The TensorRT runner and builder take the GPU's facts, streams, buffers and copies from this
device; CI replaces it with host memory next to the TensorRT stand-in, so this module is where
the CUDA side itself is checked. Needs PyTorch with CUDA and nvidia-smi (no TensorRT); skipped
elsewhere. Run it with:

    .venv/bin/pytest -m gpu tests/tensorrt/test_cuda_device.py -v -rs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU visible to PyTorch", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
_FACTS = """
import json, torch
from trt_ops.engines.tensorrt.device import CudaDevice
hw = CudaDevice().gpu()
print(json.dumps({"uuid": str(torch.cuda.get_device_properties(0).uuid), **hw.model_dump()}))
"""


def test_gpu_facts_are_the_visible_gpus_from_nvidia_smi() -> None:
    from trt_ops.engines.tensorrt.device import CudaDevice, visible_gpu
    from trt_ops.targets.host import gpus

    listed = gpus()
    props = torch.cuda.get_device_properties(0)
    smi = visible_gpu(str(props.uuid), listed)
    assert smi is not None, (str(props.uuid), [g.uuid for g in listed])
    hw = CudaDevice().gpu()
    assert (hw.gpu_product, hw.driver_version) == (smi.product, smi.driver_version)
    assert hw.compute_capability == smi.compute_capability == f"{props.major}.{props.minor}"
    assert hw.sm_count == props.multi_processor_count and hw.cuda_version == torch.version.cuda


def test_cuda_visible_devices_is_honoured() -> None:
    """CUDA's device 0 under CUDA_VISIBLE_DEVICES=<second GPU> is nvidia-smi's second GPU."""
    from trt_ops.targets.host import gpus

    listed = gpus()
    if len(listed) < 2:
        pytest.skip("needs two GPUs")
    for index, gpu in enumerate(listed[:2]):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(index),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run([sys.executable, "-c", _FACTS], env=env, capture_output=True,
                             text=True, check=True, cwd=REPO).stdout
        facts = json.loads(out.strip().splitlines()[-1])
        assert gpu.uuid.lower().endswith(facts["uuid"].lower()), (index, gpu.uuid, facts)
        assert facts["gpu_product"] == gpu.product and facts["driver_version"] == gpu.driver_version


def test_round_trips_on_two_streams() -> None:
    """Uploads and downloads enqueued on two streams come back intact, large ones included."""
    from trt_ops.engines.tensorrt.device import CudaDevice

    device = CudaDevice()
    streams = [device.stream(), device.stream()]
    assert len({s.handle for s in streams}) == 2 and all(s.handle for s in streams)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n, dtype=np.float32) for n in (7, 1 << 24)]  # 28 B, 64 MiB
    buffers = []
    for i, array in enumerate(arrays):
        stream = streams[i % 2]
        buf = device.alloc(array.nbytes, stream)
        assert buf.ptr and buf.nbytes >= array.nbytes
        device.upload(buf, array, stream)
        buffers.append((buf, stream))
    for array, (buf, stream) in zip(arrays, buffers):
        back = device.download(buf, array.nbytes, stream).view(np.float32)
        np.testing.assert_array_equal(back, array)
    device.synchronize()
