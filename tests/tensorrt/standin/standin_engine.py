"""The TensorRT stand-in's runtime, engines, execution contexts and inspector. Tests only.

The runtime reads stand-in plans (:mod:`.standin_plan`) and refuses them as TensorRT does
(another version without version compatibility, another
compute capability without hardware compatibility, host code not allowed, a missing lean
runtime); engines run through onnxruntime, reading inputs from and writing outputs to the
addresses the caller bound. See :mod:`.tensorrt_standin`.
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tests.tensorrt.standin.standin_plan import read_plan
from tests.tensorrt.standin.tensorrt_standin import Mirrored, StandinState, expect

LEAN_RUNTIME_MARK = "tensorrt-standin-lean-runtime"
_LAYER_TYPES = {"Conv": "CaskConvolution", "Gemm": "CaskGemm", "MatMul": "CaskGemm"}
_DTYPE_WORDS = {"FLOAT": "Float", "HALF": "Half", "BF16": "BFloat16", "INT8": "Int8",
                "FP8": "FP8", "INT32": "Int32", "INT64": "Int64", "BOOL": "Bool", "UINT8": "UInt8"}


def _numpy(kind: str) -> np.dtype:
    return np.dtype({"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "UINT8": "uint8",
                     "INT32": "int32", "INT64": "int64", "BOOL": "bool"}[kind])


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)

class EngineInspector(Mirrored):
    real_name = "EngineInspector"

    def __init__(self, state: StandinState, header: dict[str, Any]) -> None:
        super().__init__(state)
        self._header = header

    def get_engine_information(self, fmt: Any) -> str:
        expect(fmt, self._state.real.LayerInformationFormat, "get_engine_information")
        h = self._header
        verbosity = h["profiling_verbosity"]
        names = [layer["name"] for layer in h["layers"]]
        if fmt.name != "JSON":
            return "\n".join(names)
        io = [t["name"] for t in h["io"]]
        if verbosity == "NONE":
            layers: list[Any] = []
        elif verbosity == "LAYER_NAMES_ONLY":
            layers = names
        else:
            layers = [self._detailed(layer) for layer in h["layers"]]
        doc: dict[str, Any] = {"Layers": layers}
        if self._state.major >= 11:  # 11.x: I/O tensors as objects
            doc["I/O Tensors"] = [{"Name": n} for n in io]
        else:
            doc["Bindings"] = io
        return json.dumps(doc)

    def _detailed(self, layer: dict[str, Any]) -> dict[str, Any]:
        word = _DTYPE_WORDS[layer["precision"]]

        def tensor(name: str) -> dict[str, Any]:
            if self._state.major >= 11:
                return {"Name": name, "Format": "Row major linear", "DataType": word}
            return {"Name": name, "Format/Datatype": f"Row major linear {word} format"}

        return {"Name": layer["name"], "LayerType": _LAYER_TYPES.get(layer["kinds"][0],
                                                                      layer["kinds"][0]),
                "Inputs": [tensor(i) for i in layer["inputs"]],
                "Outputs": [tensor(layer["output"])], "TacticName": "tensorrt_standin",
                "Metadata": "\x1e".join(f"[ONNX Layer: {n}]" for n in layer["onnx_nodes"])}


class CudaEngine(Mirrored):
    real_name = "ICudaEngine"

    def __init__(self, state: StandinState, header: dict[str, Any], onnx_bytes: bytes) -> None:
        super().__init__(state)
        self._header = header
        self._io = {t["name"]: t for t in header["io"]}
        self._onnx = onnx_bytes
        self._session: Any = None
        self._session_lock = threading.Lock()

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._header["io"][index]["name"]

    def get_tensor_mode(self, name: str) -> Any:
        mode = self._state.real.TensorIOMode
        return mode.INPUT if self._io[name]["mode"] == "INPUT" else mode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(self._state.real.DataType, self._io[name]["dtype"])

    def get_tensor_shape(self, name: str) -> Any:
        return self._state.real.Dims(self._io[name]["shape"])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
        return [self._state.real.Dims(s) for s in self._header["profile"][name]]

    def create_execution_context(self) -> ExecutionContext | None:
        if self._state.take_fault("create_execution_context"):
            return None
        self._state.count("contexts")
        return ExecutionContext(self._state, self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self._state, self._header)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        with self._session_lock:
            if self._session is None:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.log_severity_level = 3
                self._session = ort.InferenceSession(self._onnx, options,
                                                     providers=["CPUExecutionProvider"])
        names = [n for n, t in self._io.items() if t["mode"] == "OUTPUT"]
        return dict(zip(names, self._session.run(names, feeds)))


class ExecutionContext(Mirrored):
    """Shapes and addresses bound by the caller, then a run that reads and writes that memory."""

    real_name = "IExecutionContext"

    def __init__(self, state: StandinState, engine: CudaEngine) -> None:
        super().__init__(state)
        self._engine = engine
        self._shapes: dict[str, list[int]] = {}
        self._addresses: dict[str, int] = {}
        self._threads: set[int] = set()  # threads that staged since the last run
        self._running = threading.Lock()

    def _staged_by_this_thread(self) -> None:
        self._threads.add(threading.get_ident())

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self._staged_by_this_thread()
        dims = [int(shape[i]) for i in range(len(shape))]
        if self._state.take_fault("set_input_shape"):
            return False
        t = self._engine._io.get(name)
        low, _opt, high = self._engine._header["profile"].get(name, [None, None, None])
        if t is None or t["mode"] != "INPUT" or len(dims) != len(t["shape"]) or not all(
                lo <= d <= hi for lo, d, hi in zip(low, dims, high)):
            self._state.error(f"set_input_shape: {name!r} {dims} is not an input shape within "
                              f"the profile (min {low}, max {high})")
            return False
        self._shapes[name] = dims
        return True

    def get_tensor_shape(self, name: str) -> Any:
        t = self._engine._io[name]
        if t["mode"] == "INPUT":
            return self._state.real.Dims(self._shapes.get(name, t["shape"]))
        return self._state.real.Dims(self._output_shape(name))

    def _output_shape(self, name: str) -> list[int]:
        io = self._engine._io
        shape = list(io[name]["shape"])
        if all(d >= 0 for d in shape):
            return shape
        inputs = [n for n, t in io.items() if t["mode"] == "INPUT"]
        if any(n not in self._shapes for n in inputs):
            return shape  # unknown until every input shape is set, as in TensorRT
        # shape propagation: a dim named like an input's dim takes its size ...
        sizes = {p: self._shapes[n][i] for n in inputs
                 for i, p in enumerate(io[n]["params"]) if p}
        resolved = [d if d >= 0 else sizes.get(p or "", -1)
                    for d, p in zip(shape, io[name]["params"])]
        if all(d >= 0 for d in resolved):
            return resolved
        # ... else the graph runs once on zeros of the bound shapes
        zeros = {n: np.zeros(self._shapes[n], _numpy(self._engine._io[n]["dtype"])) for n in inputs}
        return list(self._engine._run(zeros)[name].shape)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self._staged_by_this_thread()
        if name not in self._engine._io or not address:
            self._state.error(f"set_tensor_address: {name!r} is not an I/O tensor of the engine")
            return False
        self._addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        # TensorRT does not check this; sharing a context between threads is undefined behaviour
        # there, and the stand-in refuses it so that tests see it
        shared = "execute_async_v3: the execution context is used by two threads at once"
        if not self._running.acquire(blocking=False):
            self._state.error(shared)
            return False
        try:
            if self._threads - {threading.get_ident()}:
                self._state.error(shared)
                return False
            return self._execute()
        finally:
            self._threads.clear()
            self._running.release()

    def _execute(self) -> bool:
        io = self._engine._io
        missing = [n for n in io if n not in self._addresses] + \
                  [n for n, t in io.items() if t["mode"] == "INPUT" and n not in self._shapes]
        if missing:
            self._state.error(f"execute_async_v3: no shape or address for {sorted(set(missing))}")
            return False
        feeds = {}
        for n, t in io.items():
            if t["mode"] == "INPUT":
                dtype, shape = _numpy(t["dtype"]), self._shapes[n]
                raw = (ctypes.c_ubyte * (int(np.prod(shape)) * dtype.itemsize)).from_address(
                    self._addresses[n])
                feeds[n] = np.frombuffer(raw, dtype=np.uint8).copy().view(dtype).reshape(shape)
        for n, value in self._engine._run(feeds).items():
            value = np.ascontiguousarray(value, dtype=_numpy(io[n]["dtype"]))
            ctypes.memmove(self._addresses[n], value.ctypes.data, value.nbytes)
        self._state.count("executions")
        self._state.count(f"executions on context {id(self):x}")
        return True


class Runtime(Mirrored):
    real_name = "Runtime"

    def __init__(self, state: StandinState, logger: Any, lean_of: str | None = None) -> None:
        super().__init__(state)
        expect(logger, state.real.ILogger, "Runtime")
        self._logger = logger
        self._lean_of = lean_of
        self.engine_host_code_allowed = False

    def load_runtime(self, path: str) -> Runtime | None:
        """A lean runtime library; the stand-in's is a text file naming its version."""
        file = Path(path)
        text = file.read_text(errors="replace") if file.is_file() else ""
        if not text.startswith(LEAN_RUNTIME_MARK):
            self._state.error(f"load_runtime: cannot load the lean runtime {path!r}")
            return None
        return Runtime(self._state, self._logger, lean_of=text.split()[1])

    def deserialize_cuda_engine(self, data: Any) -> CudaEngine | None:
        self._state.count("deserializations")
        if self._state.take_fault("deserialize_cuda_engine"):
            return None
        plan = read_plan(bytes(data))
        if plan is None:
            self._state.error("deserialize_cuda_engine: not a serialized engine")
            return None
        header, onnx_bytes = plan
        why = self._refusal(header)
        if why:
            self._state.error(f"deserialize_cuda_engine: {why}")
            return None
        return CudaEngine(self._state, header, onnx_bytes)

    def _refusal(self, h: dict[str, Any]) -> str | None:
        built, here = h["version"], self._state.version
        if built != here:
            if not h["version_compatible"]:
                return f"the plan is for TensorRT {built}, this is {here}"
            b, r = (tuple(int(p) for p in v.split(".")[:3]) for v in (built, here))
            if r < b or not (b[0] == r[0] or (b[0], r[0]) == (10, 11)):
                return f"a version-compatible plan of TensorRT {built} does not run on {here}"
            if h["exclude_lean_runtime"] and self._lean_of != built:
                return f"the plan has no lean runtime; load TensorRT {built}'s with load_runtime"
            if not self.engine_host_code_allowed:
                return ("the plan carries host code (its lean runtime); "
                        "engine_host_code_allowed is False")
        built_cc, here_cc = _cc(h["compute_capability"]), _cc(self._state.compute_capability)
        level = h["hardware_compatibility"]
        if (level in ("NONE", "SAME_COMPUTE_CAPABILITY") and built_cc != here_cc) or \
                (level == "AMPERE_PLUS" and here_cc < (8, 0)):
            return (f"the plan is for compute capability {h['compute_capability']} "
                    f"(hardware compatibility {level}); this GPU has "
                    f"{self._state.compute_capability}")
        return None
