"""The TensorRT backend: strongly typed engines built from Q/DQ ONNX, one per GPU product.

Supports TensorRT 10.6 and newer, 11.x included (why 10.6: :mod:`.settings`). Precision lives in
the ONNX graph (Model Optimizer's Q/DQ nodes for int8/fp8, AutoCast's casts
for fp16/bf16), and the network is strongly typed, so the builder never picks precisions itself.
That is the only path TensorRT 11 has, and it works the same on 10.x, where strong typing is
the ``STRONGLY_TYPED`` network flag (11.x always types strongly).

The package is split by concern: :mod:`.settings` (builder options, versions, compatibility
rules; no TensorRT needed), :mod:`.builder`, :mod:`.runner`, :mod:`.device` (GPU memory and
streams), :mod:`.timing_cache` and :mod:`.layer_report`. TensorRT and torch are imported inside
functions, so every module imports on machines without either. Every engine is described by a
:class:`~trt_ops.engines.contract.TensorRTEngine` record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trt_ops.engines.base import (
    CAST,
    QUANTIZED,
    BuildRequest,
    BuildResult,
    EngineBackend,
    check_precision_name,
)
from trt_ops.engines.contract import TensorRTEngine, expect_engine
from trt_ops.engines.tensorrt.device import current_device
from trt_ops.engines.tensorrt.settings import (
    check_engine_compatible,
    check_min_compute_capability,
    check_supported_version,
)
from trt_ops.errors import EngineError

if TYPE_CHECKING:
    from trt_ops.engines.contract import EngineContract
    from trt_ops.engines.tensorrt.runner import TensorRTRunner
    from trt_ops.targets.catalog import Target
    from trt_ops.targets.host import HostInfo


class TensorRTBackend(EngineBackend):
    name = "tensorrt"
    engine_filename = "model.plan"
    precisions = ("fp8", "int8", "fp16", "bf16", "fp32")

    def unavailable_reason(self) -> str | None:
        missing = ("TensorRT is not installed: install trt-ops[tensorrt] on a GPU worker "
                   "(or use the onnxruntime backend here)")
        try:
            import tensorrt as trt
        except ImportError:
            return missing
        # a folder named tensorrt on sys.path imports as an empty namespace package
        if not hasattr(trt, "Builder"):
            return missing
        try:
            check_supported_version(trt.__version__)
        except EngineError as exc:
            return str(exc)
        return current_device().unavailable_reason()

    def version(self) -> str:
        import tensorrt as trt

        return trt.__version__

    def check_precision(self, precision: str, target: Target) -> None:
        super().check_precision(precision, target)
        check_min_compute_capability(precision, target)

    def calibrator(self, precision: str) -> str:
        check_precision_name(precision)
        if precision in QUANTIZED:
            return "trt_ops.calibration.modelopt:modelopt_quantize"
        if precision in CAST:
            return "trt_ops.calibration.modelopt:autocast"
        return "trt_ops.calibration.common:passthrough"

    def build(self, request: BuildRequest) -> BuildResult:
        from trt_ops.engines.tensorrt.builder import build_plan

        return build_plan(request, self.engine_filename)

    def check_compatible(self, engine: EngineContract, host: HostInfo) -> None:
        trt_engine = expect_engine(engine, TensorRTEngine, self.name)
        reason = self.unavailable_reason()
        if reason:
            raise EngineError(f"cannot run a TensorRT engine here: {reason}",
                              "run validate/benchmark of tensorrt engines on the target's GPU queue")
        check_engine_compatible(trt_engine, host, self.version())

    def load(self, engine_path: Path, engine: EngineContract, timed: bool = True) -> TensorRTRunner:
        from trt_ops.engines.tensorrt.runner import load_runner

        return load_runner(engine_path, expect_engine(engine, TensorRTEngine, self.name))
