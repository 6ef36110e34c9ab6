"""What hardware this process runs on, and whether it is the hardware a target names.

An engine belongs to one hardware class: a TensorRT engine to a GPU product and TensorRT
version; an onnxruntime engine optimized at the highest level to a CPU instruction-set level
(its kernels' memory layouts are chosen for that ISA).
"""

from __future__ import annotations

import dataclasses
import os
import platform as _platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from trt_ops.errors import TargetMismatchError
from trt_ops.targets.catalog import Target

# Highest first: the first level whose flags are all present names the CPU's class.
_ISA_LEVELS = (
    ("avx512_vnni", ("avx512f", "avx512bw", "avx512_vnni")),
    ("avx512", ("avx512f", "avx512bw")),
    ("avx2", ("avx2", "fma")),
    ("avx", ("avx",)),
)


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    product: str
    compute_capability: str
    driver_version: str = ""
    memory_mib: int = 0
    uuid: str = ""


@dataclasses.dataclass(frozen=True)
class HostInfo:
    hostname: str
    cpu_isa: str
    cpu_model: str
    gpus: tuple[GpuInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _cpu_flags_and_model() -> tuple[set[str], str]:
    flags: set[str] = set()
    model = _platform.processor() or _platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name":
                model = value.strip()
    except OSError:
        pass
    return flags, model


def cpu_isa() -> str:
    """The CPU's instruction-set class, e.g. ``x86_64-avx512_vnni``."""
    arch = _platform.machine().lower()
    if arch in ("amd64", "x86_64"):
        flags, _ = _cpu_flags_and_model()
        for level, needed in _ISA_LEVELS:
            if all(f in flags for f in needed):
                return f"x86_64-{level}"
        return "x86_64"
    return {"arm64": "aarch64"}.get(arch, arch)  # macOS says arm64 for the same ISA


def gpus() -> tuple[GpuInfo, ...]:
    """The NVIDIA GPUs visible to this process (via nvidia-smi), empty when there are none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap,driver_version,memory.total,uuid",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 5:
            mem = int(parts[3]) if parts[3].isdigit() else 0
            found.append(GpuInfo(parts[0], parts[1], parts[2], mem, parts[4]))
    return tuple(found)


@lru_cache(maxsize=1)
def host_info() -> HostInfo:
    """This machine. ``hostname`` is ``$TRT_OPS_WORKER_NAME`` when set (e.g. the Celery worker's
    name, for several workers on one host), else the host's name."""
    _, model = _cpu_flags_and_model()
    name = os.environ.get("TRT_OPS_WORKER_NAME") or _platform.node()
    return HostInfo(hostname=name, cpu_isa=cpu_isa(), cpu_model=model, gpus=gpus())


def check_target(target: Target, host: HostInfo | None = None) -> HostInfo:
    """Fails before any work when this machine is not the hardware ``target`` names."""
    host = host or host_info()
    pool = os.environ.get("TRT_OPS_TARGET_CLASS")  # set by the worker chart on each pool's pods
    if pool and pool != target.name:
        raise TargetMismatchError(
            f"target {target.name!r} reached worker {host.hostname!r} of pool {pool!r}",
            f"route this task to queue {target.queue!r}, whose workers are pool {target.name!r}",
        )
    if target.is_gpu:
        if not host.gpus:
            raise TargetMismatchError(
                f"target {target.name!r} needs GPU {target.gpu_product!r}, but worker "
                f"{host.hostname!r} has no NVIDIA GPU",
                f"route this task to queue {target.queue!r}, whose workers have that GPU",
            )
        gpu = host.gpus[0]
        if gpu.product != target.gpu_product:
            raise TargetMismatchError(
                f"target {target.name!r} needs GPU {target.gpu_product!r}, but worker "
                f"{host.hostname!r} has {gpu.product!r} (compute capability {gpu.compute_capability})",
                f"route this task to queue {target.queue!r}, or fix the worker's queue or the "
                "catalog's gpu_product",
            )
    elif target.cpu_isa and host.cpu_isa != target.cpu_isa:
        raise TargetMismatchError(
            f"target {target.name!r} is for CPUs of class {target.cpu_isa!r}, but worker "
            f"{host.hostname!r} is {host.cpu_isa!r} ({host.cpu_model})",
            f"route this task to queue {target.queue!r}, or add a catalog class for {host.cpu_isa!r}",
        )
    return host
