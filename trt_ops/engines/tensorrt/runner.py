"""Running a TensorRT engine: deserialized after a sha256 check, on the current device's streams.

Memory and streams come from the device seam (:mod:`.device`): CUDA through PyTorch on GPU
workers. Every call that TensorRT answers with a null object or ``False`` is checked, as
Polygraphy does: ``load_runtime``, ``deserialize_cuda_engine``, ``create_execution_context``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``.

An execution context must not be used by two threads at once, and pyfunc serving calls
``predict`` from many threads: each call borrows a context (with its own stream and buffers)
from a pool, which grows to the number of concurrent callers.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_ops.engines.base import Runner
from trt_ops.engines.tensorrt.bindings import dims_list, trt_logger
from trt_ops.engines.tensorrt.device import Buffer, Device, Stream, require_device
from trt_ops.engines.tensorrt.settings import check_input_shape
from trt_ops.errors import EngineError, IntegrityError
from trt_ops.store.digest import sha256_bytes

if TYPE_CHECKING:
    import tensorrt as trt

    from trt_ops.engines.contract import TensorRTEngine

LEAN_RUNTIME_ENV = "TRT_OPS_TRT_LEAN_RUNTIME"
# engine tensor DataType name -> numpy dtype; bf16 travels as its raw 16 bits (see _to_bf16)
NUMPY_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "uint16", "INT8": "int8",
                "UINT8": "uint8", "INT32": "int32", "INT64": "int64", "BOOL": "bool"}


def runtime_for(engine: TensorRTEngine, runtime_version: str) -> trt.Runtime:
    """A runtime that can deserialize ``engine``'s plan on TensorRT ``runtime_version``."""
    import tensorrt as trt

    runtime = trt.Runtime(trt_logger())
    if runtime is None:
        raise EngineError("TensorRT could not create a runtime",
                          "read TensorRT's errors logged above (CUDA or driver problems)")
    if engine.builder.version_compatible:
        if engine.builder.exclude_lean_runtime and engine.backend_version != runtime_version:
            lean = os.environ.get(LEAN_RUNTIME_ENV)
            if not lean:
                raise EngineError(
                    f"the engine was built with TensorRT {engine.backend_version} without its "
                    f"lean runtime, and this worker has TensorRT {runtime_version}",
                    f"set {LEAN_RUNTIME_ENV} to that version's libnvinfer_lean library, or rebuild "
                    "without exclude_lean_runtime")
            loaded = runtime.load_runtime(lean)
            if loaded is None:
                raise EngineError(f"TensorRT could not load the lean runtime {lean!r} "
                                  f"({LEAN_RUNTIME_ENV})",
                                  f"point {LEAN_RUNTIME_ENV} at libnvinfer_lean of TensorRT "
                                  f"{engine.backend_version} for this platform")
            runtime = loaded
        # a version-compatible plan carries the lean runtime's host code: trusted after the sha256 check
        runtime.engine_host_code_allowed = True
    return runtime


def deserialize(runtime: trt.Runtime, data: bytes, what: str) -> trt.ICudaEngine:
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise EngineError(f"TensorRT could not deserialize {what}",
                          "read TensorRT's errors logged above: usually a TensorRT version or "
                          "GPU mismatch, or too little GPU memory; rebuild the engine on this "
                          "worker type")
    return engine


def load_runner(engine_path: Path, engine: TensorRTEngine) -> TensorRTRunner:
    """The engine at ``engine_path``, deserialized once its bytes match ``engine.sha256``.

    The check comes before TensorRT is even imported: a plan is executable code.
    """
    data = Path(engine_path).read_bytes()
    if sha256_bytes(data) != engine.sha256:
        raise IntegrityError(f"{engine_path} does not match the engine's recorded sha256 "
                             f"{engine.sha256}",
                             "fetch the engine through the artifact store (which verifies it) "
                             "or rebuild it; never deserialize an unverified plan")
    import tensorrt as trt

    device = require_device()
    runtime = runtime_for(engine, trt.__version__)
    return TensorRTRunner(runtime, deserialize(runtime, data, str(engine_path)), device)


class _Slot:
    """One execution context with its stream and device buffers (grow-only, reused)."""

    def __init__(self, engine: trt.ICudaEngine, device: Device) -> None:
        context = engine.create_execution_context()
        if context is None:
            raise EngineError("TensorRT could not create an execution context for the engine",
                              "free GPU memory (fewer concurrent streams or callers), or read "
                              "TensorRT's errors logged above")
        self.context: trt.IExecutionContext = context
        self.device = device
        self.stream: Stream = device.stream()
        self.buffers: dict[str, Buffer] = {}

    def bind(self, name: str, nbytes: int) -> Buffer:
        buf = self.buffers.get(name)
        if buf is None or buf.nbytes < nbytes:
            buf = self.buffers[name] = self.device.alloc(nbytes, self.stream)
        if not self.context.set_tensor_address(name, buf.ptr):
            raise EngineError(f"TensorRT refused the device buffer of tensor {name!r}",
                              "this is a bug in trt-ops's runner; please report it with the engine")
        return buf

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise EngineError("TensorRT failed to enqueue the engine (execute_async_v3 returned False)",
                              "read TensorRT's errors logged above; check input shapes and GPU memory")


class TensorRTRunner(Runner):
    """Runs a deserialized engine: numpy feeds in, numpy outputs out, on ``device``."""

    def __init__(self, runtime: trt.Runtime, engine: trt.ICudaEngine, device: Device) -> None:
        import tensorrt as trt

        self._runtime: trt.Runtime | None = runtime  # must outlive the engine it deserialized
        self._engine: trt.ICudaEngine | None = engine
        self._device = device
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        kinds = {n: engine.get_tensor_dtype(n).name for n in names}
        unsupported = sorted(n for n, k in kinds.items() if k not in NUMPY_DTYPES)
        if unsupported:
            raise EngineError(f"the engine has I/O tensors {unsupported} of types this runner cannot "
                              f"feed ({[kinds[n] for n in unsupported]})",
                              "keep the model's inputs and outputs in fp32/fp16/int types "
                              "(Model Optimizer's keep_io_types)")
        self._dtypes = {n: np.dtype(NUMPY_DTYPES[k]) for n, k in kinds.items()}
        self._bf16 = {n for n, k in kinds.items() if k == "BF16"}
        self._limits = {}
        for n in self.input_names:
            low, _opt, high = engine.get_tensor_profile_shape(n, 0)
            self._limits[n] = (dims_list(low), dims_list(high))
        self._lock = threading.Lock()
        self._idle: list[_Slot] = []
        self._slots: list[_Slot] = []

    @property
    def contexts(self) -> int:
        """How many execution contexts this runner has made so far."""
        return len(self._slots)

    def _new_slot(self) -> _Slot:
        if self._engine is None:
            raise EngineError("this TensorRT runner is closed", "load the engine again")
        slot = _Slot(self._engine, self._device)
        self._slots.append(slot)
        return slot

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[_Slot]:
        """A context that no other thread uses until it is given back."""
        with self._lock:
            slot = self._idle.pop() if self._idle else self._new_slot()
        try:
            yield slot
        finally:
            with self._lock:
                self._idle.append(slot)

    def _stage(self, s: _Slot, feeds: dict[str, np.ndarray]) -> dict[str, tuple[list[int], Buffer]]:
        """Copies the feeds into ``s``'s buffers and binds its outputs; returns output shapes."""
        missing = sorted(set(self.input_names) - set(feeds))
        extra = sorted(set(feeds) - set(self.input_names))
        if missing or extra:
            raise EngineError(f"feeds do not match the engine's inputs: missing {missing}, "
                              f"unexpected {extra}", f"feed exactly {self.input_names}")
        for name in self.input_names:
            array = self._to_engine(name, feeds[name])
            check_input_shape(name, array.shape, *self._limits[name])
            if not s.context.set_input_shape(name, tuple(array.shape)):
                raise EngineError(f"TensorRT refused input shape {list(array.shape)} of {name!r}",
                                  "read TensorRT's errors logged above; feed shapes within the "
                                  "engine's profile")
            self._device.upload(s.bind(name, array.nbytes), array, s.stream)
        outputs = {}
        for name in self.output_names:
            shape = dims_list(s.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineError(f"output {name!r} has a data-dependent shape {shape}",
                                  "this runner needs output shapes known from the input shapes")
            outputs[name] = (shape, s.bind(name, math.prod(shape) * self._dtypes[name].itemsize))
        return outputs

    def _to_engine(self, name: str, value: np.ndarray) -> np.ndarray:
        if name in self._bf16:
            return _to_bf16(np.asarray(value, dtype=np.float32))
        return np.ascontiguousarray(value, dtype=self._dtypes[name])

    def _from_engine(self, name: str, raw: np.ndarray, shape: list[int]) -> np.ndarray:
        array = raw.view(self._dtypes[name]).reshape(shape)
        # numpy has no bfloat16: such outputs come back as float32
        return (array.astype(np.uint32) << 16).view(np.float32) if name in self._bf16 else array

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._borrow() as s:
            outputs = self._stage(s, feeds)
            s.execute()
            result = {}
            for name, (shape, buf) in outputs.items():
                nbytes = math.prod(shape) * self._dtypes[name].itemsize
                result[name] = self._from_engine(
                    name, self._device.download(buf, nbytes, s.stream), shape)
            return result

    def run_concurrent(self, feeds: dict[str, np.ndarray], streams: int, iterations: int) -> float:
        """``iterations`` runs round-robin over ``streams`` streams, one context each; wall seconds.

        Inputs are copied once per stream before timing: this measures the engine's throughput
        on the device, not host-to-device copies.
        """
        with contextlib.ExitStack() as borrowed:
            slots = [borrowed.enter_context(self._borrow()) for _ in range(max(1, streams))]
            for s in slots:
                self._stage(s, feeds)
            self._device.synchronize()
            start = time.perf_counter()
            for i in range(iterations):
                slots[i % len(slots)].execute()
            for s in slots:
                s.stream.synchronize()
            return time.perf_counter() - start

    def close(self) -> None:
        for s in self._slots:
            s.stream.synchronize()
        # contexts before the engine that owns them
        self._slots.clear()
        self._idle.clear()
        self._engine = None
        self._runtime = None


def _to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> the 16 bits of bfloat16, rounded to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)
