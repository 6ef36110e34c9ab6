"""Engine identity: an onnxruntime engine belongs to the CPU class it was optimized for."""

from __future__ import annotations

import dataclasses

import pytest

from trt_ops.engines import get_backend
from trt_ops.errors import EngineError, SpecError, TargetMismatchError
from trt_ops.targets.catalog import get_target
from trt_ops.targets.host import GpuInfo, check_target, host_info


def test_engine_refuses_another_cpu_class(digits_run):
    from trt_ops.engines.contract import engine_from_metadata

    engine = engine_from_metadata(digits_run.attempts[0].build.info["metadata"])
    backend = get_backend("onnxruntime")
    backend.check_compatible(engine, host_info())  # this machine: fine
    other = dataclasses.replace(host_info(), cpu_isa="x86_64-avx2")
    with pytest.raises(EngineError, match="optimized for CPUs of class 'x86_64-avx512_vnni'|optimized for CPUs of class"):
        backend.check_compatible(engine, other)


def test_gpu_target_on_a_worker_with_another_gpu():
    """The worker's GPU is described, not real: this machine has none."""
    host = dataclasses.replace(host_info(), gpus=(GpuInfo("NVIDIA L4", "8.9"),))
    with pytest.raises(TargetMismatchError, match="needs GPU 'NVIDIA H100 80GB HBM3', but worker .* has 'NVIDIA L4'"):
        check_target(get_target("h100"), host)
    check_target(get_target("l4"), host)


def test_gpu_target_on_this_gpu_less_machine():
    if host_info().gpus:
        pytest.skip("this machine has a GPU")
    with pytest.raises(TargetMismatchError, match="has no NVIDIA GPU"):
        check_target(get_target("h200"))


def test_unknown_target_and_backend():
    with pytest.raises(SpecError, match="unknown target class 'a100'"):
        get_target("a100")
    with pytest.raises(SpecError, match="unknown engine backend"):
        get_backend("tvm")


def test_a_pool_refuses_another_class_task(monkeypatch):
    """The chart sets TRT_OPS_TARGET_CLASS on each pool's pods: a task routed to the wrong pool
    fails before any work, even when the hardware would fit."""
    host = dataclasses.replace(host_info(), gpus=(GpuInfo("NVIDIA L4", "8.9"),))
    monkeypatch.setenv("TRT_OPS_TARGET_CLASS", "h100")
    with pytest.raises(TargetMismatchError, match="target 'l4' reached worker .* of pool 'h100'"):
        check_target(get_target("l4"), host)
    monkeypatch.setenv("TRT_OPS_TARGET_CLASS", "l4")
    assert check_target(get_target("l4"), host) is host
