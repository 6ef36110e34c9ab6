"""The engine backend interface: build an engine for a target, load it, run feeds.

A backend owns three things that depend on the runtime that will execute the engine:
where the Q/DQ nodes go (its calibrator), how the ONNX is compiled for one hardware class
(``build``), and how an engine is loaded and run (``load`` returns a :class:`Runner`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, cast

from trt_ops.errors import PrecisionError

if TYPE_CHECKING:
    import numpy as np

    from trt_ops.engines.contract import EngineContract, OnnxRuntimeEngine, TensorRTEngine
    from trt_ops.store import ArtifactStore
    from trt_ops.targets.catalog import Target
    from trt_ops.targets.host import HostInfo

# Order matters: the precision fallback goes from the most aggressive to fp32.
PRECISIONS = ("fp8", "int8", "fp16", "bf16", "fp32")
Precision = Literal["fp8", "int8", "fp16", "bf16", "fp32"]
QUANTIZED = ("int8", "fp8")
CAST = ("fp16", "bf16")

# An input's shapes for a dynamic-shape engine: {"min": [...], "opt": [...], "max": [...]}
ShapeProfile = dict[str, dict[str, list[int]]]


def check_precision_name(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}", f"use one of {list(PRECISIONS)}")
    return cast(Precision, precision)


@dataclasses.dataclass
class BuildRequest:
    onnx_path: Path          # the calibrated (Q/DQ or cast) ONNX for this precision
    out_dir: Path            # where the backend writes the engine and its side files
    precision: str
    target: Target
    profile: ShapeProfile
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # backend builder options
    store: ArtifactStore | None = None  # shared state across builds (e.g. a timing cache)


@dataclasses.dataclass
class BuildResult:
    engine_path: Path
    engine: TensorRTEngine | OnnxRuntimeEngine  # the engine contract (trt_ops.engines.contract)
    extra_files: dict[str, Path] = dataclasses.field(default_factory=dict)  # e.g. layer report


class Runner(ABC):
    """A loaded engine. Use as a context manager; ``infer`` maps input names to arrays."""

    input_names: list[str]
    output_names: list[str]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the engine's memory; the runner is unusable afterwards."""

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_concurrent(self, feeds: dict[str, np.ndarray], streams: int, iterations: int) -> float:
        """Runs ``iterations`` inferences spread over ``streams`` concurrent streams; wall seconds.

        The default uses threads (onnxruntime releases the GIL while it runs); GPU runners
        override it with one CUDA stream and execution context per stream.
        """
        import time
        from concurrent.futures import ThreadPoolExecutor

        per_stream = [iterations // streams + (i < iterations % streams) for i in range(streams)]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=streams) as pool:
            list(pool.map(lambda n: [self.infer(feeds) for _ in range(n)], per_stream))
        return time.perf_counter() - start


class EngineBackend(ABC):
    name: ClassVar[str]
    engine_filename: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this backend can build and run here, else why not (and how to fix it)."""

    @abstractmethod
    def version(self) -> str: ...

    def check_precision(self, precision: str, target: Target) -> None:
        """Refuses, before any work, a precision this backend cannot run on ``target``."""
        check_precision_name(precision)
        if precision not in self.precisions:
            raise PrecisionError(
                f"the {self.name} backend cannot run {precision} engines (target {target.name!r})",
                f"choose from {list(self.precisions)} for this target, or a target whose "
                "backend supports it",
            )

    @abstractmethod
    def calibrator(self, precision: str) -> str:
        """``module:function`` that places this backend's Q/DQ or casts for ``precision``.

        It runs in a separate process (:mod:`trt_ops.calibration.isolated`) with keyword arguments
        ``onnx_in``, ``onnx_out``, ``data_npz``, ``precision``, ``method`` and returns a
        JSON-able dict of facts about the calibration.
        """

    @abstractmethod
    def build(self, request: BuildRequest) -> BuildResult: ...

    @abstractmethod
    def check_compatible(self, engine: EngineContract, host: HostInfo) -> None:
        """Raises :class:`~trt_ops.errors.EngineError` if ``engine`` cannot run on ``host``."""

    @abstractmethod
    def load(self, engine_path: Path, engine: EngineContract, timed: bool = True) -> Runner:
        """The engine at ``engine_path``, whose contract is ``engine``, ready to run.

        ``timed=False``: only the results count, not the speed (validation), so load-time work
        that only makes runs faster and costs memory may be skipped."""
