"""The onnxruntime engine backend: runs anywhere, the embedded default.

Building applies every graph optimization (``ORT_ENABLE_ALL``: constant folding, fusions,
QLinearConv for Q/DQ pairs, and NCHWc layouts blocked for this CPU's vector width) and
serializes the optimized model. Those layouts bake in the instruction set, so an engine
belongs to one CPU class, and loading it on another is refused.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_ops.engines.base import (
    BuildRequest,
    BuildResult,
    EngineBackend,
    Runner,
    check_precision_name,
)
from trt_ops.engines.contract import CpuHardware, OnnxRuntimeEngine, expect_engine, profile_ranges
from trt_ops.errors import EngineError

if TYPE_CHECKING:
    from trt_ops.engines.contract import EngineContract
    from trt_ops.targets.host import HostInfo

PROVIDERS = ["CPUExecutionProvider"]
# onnxruntime's WeightBiasQuantization quantizes a float Conv/Gemm that sits between a
# DequantizeLinear and a QuantizeLinear: it would undo the layers mixed precision keeps float
KEEP_FLOAT_OPTIMIZERS = ["WeightBiasQuantization"]


def _threads() -> int:
    return int(os.environ.get("TRT_OPS_ORT_THREADS", "0"))  # 0: onnxruntime picks


def _has_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return any(uses_external_data(t) for t in _get_all_tensors(model))


class OnnxRuntimeRunner(Runner):
    """An ONNX model in onnxruntime, as loaded (already optimized at build time).

    ``prepack``: pack the weights for the CPU's matrix kernels at load time, which runs a batch
    about twice as fast and holds the model plus its largest weight while packing; runs whose
    speed does not count (validation) leave it off and hold the model once."""

    def __init__(self, engine_path: Path, prepack: bool = True) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        # already optimized at build time: do not spend load time optimizing again
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if not prepack:
            so.add_session_config_entry("session.disable_prepacking", "1")
        so.intra_op_num_threads = _threads()
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(engine_path), so, providers=PROVIDERS)
        except Exception as exc:
            raise EngineError(f"onnxruntime cannot load engine {engine_path}: {exc}",
                              "rebuild the engine with this onnxruntime version") from exc
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


class OnnxRuntimeBackend(EngineBackend):
    name = "onnxruntime"
    engine_filename = "engine.onnx"
    precisions = ("fp32", "fp16", "int8")

    def unavailable_reason(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed: pip install onnxruntime"
        return None

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def calibrator(self, precision: str) -> str:
        return {"fp32": "trt_ops.calibration.common:passthrough",
                "fp16": "trt_ops.calibration.modelopt:autocast",
                "int8": "trt_ops.calibration.onnxruntime:ort_static"}[precision]

    def build(self, request: BuildRequest) -> BuildResult:
        """The calibrated ONNX optimized for this CPU (all of onnxruntime's graph optimizations
        but those in :data:`KEEP_FLOAT_OPTIMIZERS`), saved as the engine."""
        import onnxruntime as ort

        from trt_ops.models.onnx import io_specs
        from trt_ops.store.digest import sha256_file
        from trt_ops.targets.host import host_info

        request.out_dir.mkdir(parents=True, exist_ok=True)
        engine = request.out_dir / self.engine_filename
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(engine)
        # prepacked weights are not part of the saved model: packing them here would only add
        # a second copy of every weight to the build's memory
        so.add_session_config_entry("session.disable_prepacking", "1")
        data = None
        if _has_external_data(request.onnx_path):
            # a model over 2 GB cannot be one protobuf: its weights stay in a file beside it
            data = request.out_dir / f"{self.engine_filename}.data"
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", data.name)
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        so.log_severity_level = 3  # the hardware-specific-model warning is the point here
        start = time.perf_counter()
        try:
            ort.InferenceSession(str(request.onnx_path), so, providers=PROVIDERS,
                                 disabled_optimizers=KEEP_FLOAT_OPTIMIZERS)
        except Exception as exc:
            raise EngineError(f"onnxruntime cannot build {request.onnx_path.name} "
                              f"({request.precision}): {exc}",
                              "check that the calibrated ONNX is valid (onnx.checker) and uses "
                              "ops this onnxruntime supports") from exc
        seconds = time.perf_counter() - start
        host = host_info()
        inputs, outputs = io_specs(engine)
        return BuildResult(engine_path=engine, engine=OnnxRuntimeEngine(
            backend_version=self.version(),
            precision=check_precision_name(request.precision),
            target=request.target.name,
            hardware=CpuHardware(cpu_isa=host.cpu_isa, cpu_model=host.cpu_model),
            inputs=inputs, outputs=outputs,
            profile=profile_ranges(request.profile),
            sha256=sha256_file(engine), size=engine.stat().st_size,
            build_seconds=round(seconds, 3)),
            extra_files={"engine_data": data} if data and data.is_file() else {})

    def check_compatible(self, engine: EngineContract, host: HostInfo) -> None:
        built_for = expect_engine(engine, OnnxRuntimeEngine, self.name).hardware.cpu_isa
        if built_for != host.cpu_isa:
            raise EngineError(
                f"this onnxruntime engine was optimized for CPUs of class {built_for!r}; "
                f"{host.hostname!r} is {host.cpu_isa!r} ({host.cpu_model})",
                f"use the engine built for {host.cpu_isa!r}, or build one for it (add a catalog "
                "class with that cpu_isa)")

    def load(self, engine_path: Path, engine: EngineContract, timed: bool = True) -> Runner:
        expect_engine(engine, OnnxRuntimeEngine, self.name)
        return OnnxRuntimeRunner(engine_path, prepack=timed)
