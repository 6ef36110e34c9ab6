"""What a served engine is, read from a ``trt_engine`` model's MLmodel.

This is the only module that reads engine metadata for serving: :func:`read_flavor` turns the
flavor's configuration into :class:`ServedEngine` and :class:`Tensor` records, and everything
else in the Triton target works on those.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trt_ops.errors import SpecError


@dataclasses.dataclass(frozen=True)
class Tensor:
    """A model input or output: name, numpy dtype name, shape (-1 where dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ServedEngine:
    """One engine of a registered version, as serving needs it."""

    name: str                 # e.g. h100-fp16
    target: str               # its catalog class
    backend: str              # tensorrt | onnxruntime
    backend_version: str
    precision: str
    path: str                 # the engine file, relative to the model's root
    sha256: str
    gpu_product: str | None = None
    compute_capability: str | None = None
    cpu_isa: str | None = None
    # input name -> {"min": [...], "opt": [...], "max": [...]}
    profile: dict[str, dict[str, list[int]]] = dataclasses.field(default_factory=dict)
    version_compatible: bool = False   # a TensorRT plan built to run on later runtimes too
    load_graph_optimization: str | None = None  # onnxruntime: the level to load the engine at

    @property
    def on_gpu(self) -> bool:
        return self.backend == "tensorrt" or (self.gpu_product is not None and not self.cpu_isa)

    @property
    def hardware(self) -> str:
        if self.gpu_product:
            cc = f", compute capability {self.compute_capability}" if self.compute_capability else ""
            return f"{self.gpu_product}{cc}"
        return f"CPU {self.cpu_isa or 'any'}"

    def describe(self) -> str:
        return (f"{self.name} ({self.backend} {self.backend_version}, {self.precision}, "
                f"{self.hardware})")


def _tensors(specs: list[dict[str, Any]]) -> tuple[Tensor, ...]:
    return tuple(Tensor(s["name"], str(s["dtype"]), tuple(int(d) for d in s["shape"]))
                 for s in specs)


def _engine(entry: dict[str, Any]) -> ServedEngine:
    """One MLmodel engine entry, its metadata validated against the engine contract."""
    from trt_ops.engines.contract import (
        GpuHardware,
        OnnxRuntimeEngine,
        TensorRTEngine,
        engine_from_metadata,
    )

    contract = engine_from_metadata(entry.get("metadata") or {},
                                    f"engine {entry.get('name')!r} in MLmodel")
    target = entry.get("target") or contract.target
    if not target:
        raise SpecError(f"engine {entry.get('name')!r} in MLmodel names no target class",
                        "register the engines with trt-ops' register stage, which records it")
    hw = contract.hardware
    gpu = hw if isinstance(hw, GpuHardware) else None
    return ServedEngine(
        name=entry["name"], target=str(target), backend=contract.backend,
        backend_version=contract.backend_version, precision=contract.precision,
        path=entry["path"], sha256=contract.sha256,
        gpu_product=gpu.gpu_product if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        cpu_isa=None if gpu else getattr(hw, "cpu_isa", None),
        profile={k: v.model_dump() for k, v in contract.profile.items()},
        version_compatible=isinstance(contract, TensorRTEngine)
        and contract.builder.version_compatible,
        load_graph_optimization=(contract.builder.load_graph_optimization_level
                                 if isinstance(contract, OnnxRuntimeEngine) else None))


def read_flavor(conf: dict[str, Any]) -> tuple[list[ServedEngine], tuple[Tensor, ...],
                                                tuple[Tensor, ...]]:
    """The engines (in the model's order: fastest first) and the model's inputs and outputs."""
    try:
        engines = [_engine(e) for e in conf["engines"]]
        return engines, _tensors(conf["inputs"]), _tensors(conf["outputs"])
    except KeyError as exc:
        raise SpecError(f"the trt_engine flavor in MLmodel lacks {exc}",
                        "register the model again with this trt-ops version") from None
