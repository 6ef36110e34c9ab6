"""A stand-in for the ``tensorrt`` module, for tests only: TensorRT cannot be installed in CI.

:func:`make_standin` returns a module to install as ``sys.modules["tensorrt"]``. Its names come
from NVIDIA's real Python bindings of one version (:mod:`.real_bindings`): enums, flags,
``Dims``, ``Logger`` and every other name are the real objects, and a name that version lacks
raises ``AttributeError`` exactly as on a worker. The objects TensorRT itself would create
(builder, network, ONNX parser, builder config, optimization profile, timing cache, host
memory; runtime, engine, execution context, engine inspector in :mod:`.standin_engine`) are
small fakes: each stands for one real class of that version and answers only names that class
has; its methods check what TensorRT checks and answer a null object or ``False`` where
TensorRT does.

They "build" by serializing the parsed ONNX, with the build's facts, into the plan, and they run
a plan through onnxruntime on the CPU. Nothing here measures or predicts TensorRT's speed,
kernels, precision choices or numerics: an int8 "engine" computes exactly what onnxruntime
computes for the Q/DQ graph. What it proves is that trt-ops drives the TensorRT API of that
version correctly, end to end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

log = logging.getLogger("tensorrt_standin")


class StandinState:
    """What one installed stand-in knows and counts: the version, the GPU it pretends to run on,
    calls to fail on purpose, and what happened (for tests to assert on)."""

    def __init__(self, real: ModuleType, gpu_product: str, compute_capability: str) -> None:
        self.real = real
        self.version: str = real.__version__
        self.major = int(self.version.split(".")[0])
        self.gpu_product = gpu_product
        self.compute_capability = compute_capability
        self.faults: set[str] = set()
        self.errors: list[str] = []  # what TensorRT would have logged at error severity
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def fail_next(self, call: str) -> None:
        """The next call named ``call`` answers as TensorRT does when it fails (None/False)."""
        self.faults.add(call)

    def take_fault(self, call: str) -> bool:
        with self.lock:
            if call in self.faults:
                self.faults.discard(call)
                self.error(f"{call}: failing on purpose (stand-in fault)")
                return True
        return False

    def error(self, message: str) -> None:
        log.error("[TensorRT stand-in %s] %s", self.version, message)
        self.errors.append(message)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1


class Mirrored:
    """Base of the fakes: public names resolve only if the real class of this version has them."""

    real_name: ClassVar[str]

    def __init__(self, state: StandinState) -> None:
        object.__setattr__(self, "_state", state)

    def _check_name(self, name: str) -> None:
        state = object.__getattribute__(self, "_state")
        real = getattr(state.real, type(self).real_name)
        if not hasattr(real, name):
            raise AttributeError(f"'tensorrt.{real.__name__}' object has no attribute {name!r} "
                                 f"(TensorRT {state.version})")

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name != "real_name":
            Mirrored._check_name(self, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:  # a real name that the stand-in does not fake
        raise AttributeError(f"the TensorRT stand-in does not fake {type(self).real_name}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            Mirrored._check_name(self, name)
        object.__setattr__(self, name, value)


def expect(value: Any, enum: Any, what: str) -> None:
    """pybind11 refuses an argument of the wrong type with TypeError: so does the stand-in."""
    if not isinstance(value, enum):
        raise TypeError(f"{what}: incompatible argument {value!r}; expected {enum.__name__}")


class HostMemory(Mirrored):
    real_name = "IHostMemory"

    def __init__(self, state: StandinState, data: bytes) -> None:
        super().__init__(state)
        self._data = data

    @property
    def nbytes(self) -> int:
        return len(self._data)

    def __bytes__(self) -> bytes:  # the real one implements the buffer protocol
        return self._data


class Tensor(Mirrored):
    real_name = "ITensor"

    def __init__(self, state: StandinState, name: str, dims: list[int], elem_type: int) -> None:
        super().__init__(state)
        self.name = name
        self.shape = state.real.Dims(dims)
        self.dtype = data_type(state.real, elem_type)


def data_type(real: ModuleType, elem_type: int) -> Any:
    import onnx

    names = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF",
             onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.INT8: "INT8",
             onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.INT32: "INT32",
             onnx.TensorProto.INT64: "INT64", onnx.TensorProto.BOOL: "BOOL"}
    return getattr(real.DataType, names[elem_type])


class NetworkDefinition(Mirrored):
    real_name = "INetworkDefinition"

    def __init__(self, state: StandinState, flags: int) -> None:
        super().__init__(state)
        self._flags = flags
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []
        self._onnx: bytes | None = None

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> Tensor:
        return self._inputs[index]

    def get_output(self, index: int) -> Tensor:
        return self._outputs[index]

    def get_flag(self, flag: Any) -> bool:
        expect(flag, self._state.real.NetworkDefinitionCreationFlag, "get_flag")
        return bool(self._flags & (1 << int(flag)))

    @property
    def _strongly_typed(self) -> bool:
        # 11.x types every network strongly; 10.x only with the STRONGLY_TYPED creation flag
        flag = self._state.real.NetworkDefinitionCreationFlag.STRONGLY_TYPED
        return self._state.major >= 11 or bool(self._flags & (1 << int(flag)))


class ParserError(Mirrored):
    real_name = "ParserError"

    def __init__(self, state: StandinState, message: str, node: int = -1, node_name: str = "",
                 operator: str = "") -> None:
        super().__init__(state)
        self._message, self._node = message, node
        self._node_name, self._operator = node_name, operator

    def desc(self) -> str:
        return self._message

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._node_name

    def node_operator(self) -> str:
        return self._operator


class OnnxParser(Mirrored):
    """Reads the ONNX into the network: its inputs and outputs, and the model itself."""

    real_name = "OnnxParser"

    def __init__(self, state: StandinState, network: NetworkDefinition, logger: Any) -> None:
        super().__init__(state)
        expect(logger, state.real.ILogger, "OnnxParser")
        self._network = network
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        try:
            model = onnx.load(path)  # external data from beside the file, as TensorRT does
            onnx.checker.check_model(model)
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:  # noqa: BLE001 - a parser reports, it does not raise
            self._errors.append(ParserError(self._state, f"cannot read {path}: {exc}"))
            return False
        initializers = {i.name for i in model.graph.initializer}
        net = self._network

        def tensor(value: Any) -> Tensor:
            t = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            return Tensor(self._state, value.name, dims, t.elem_type)

        net._inputs = [tensor(v) for v in model.graph.input if v.name not in initializers]
        net._outputs = [tensor(v) for v in model.graph.output]
        net._onnx = model.SerializeToString()
        return True


class OptimizationProfile(Mirrored):
    real_name = "IOptimizationProfile"

    def __init__(self, state: StandinState) -> None:
        super().__init__(state)
        self._shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
        for dims in (low, opt, high):
            expect(dims, self._state.real.Dims, "set_shape")
        self._shapes[name] = [[int(d[i]) for i in range(len(d))] for d in (low, opt, high)]


class TimingCache(Mirrored):
    """Tactic timings by layer signature; ``combine`` is a union, as TensorRT's merge keeps both."""

    real_name = "ITimingCache"

    def __init__(self, state: StandinState, entries: dict[str, float] | None = None) -> None:
        super().__init__(state)
        self._entries = dict(entries or {})

    def serialize(self) -> HostMemory:
        body = json.dumps({"standin-timing-cache": self._state.version,
                           "entries": self._entries}, sort_keys=True).encode()
        return HostMemory(self._state, body)

    def combine(self, other: TimingCache, ignore_mismatch: bool) -> bool:
        self._entries.update({k: v for k, v in other._entries.items() if k not in self._entries})
        return True


class BuilderConfig(Mirrored):
    real_name = "IBuilderConfig"
    _typed: ClassVar[dict[str, str]] = {
        "hardware_compatibility_level": "HardwareCompatibilityLevel",
        "profiling_verbosity": "ProfilingVerbosity"}

    def __init__(self, state: StandinState) -> None:
        super().__init__(state)
        self.builder_optimization_level = 3
        self.hardware_compatibility_level = state.real.HardwareCompatibilityLevel.NONE
        self.profiling_verbosity = state.real.ProfilingVerbosity.LAYER_NAMES_ONLY
        self._flags: set[str] = set()
        self._pools: dict[str, int] = {}
        self._profiles: list[OptimizationProfile] = []
        self._cache: TimingCache | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._typed:
            expect(value, getattr(self._state.real, self._typed[name]), name)
        if name == "builder_optimization_level" and not 0 <= int(value) <= 5:
            raise ValueError(f"builder_optimization_level {value} is out of range [0, 5]")
        super().__setattr__(name, value)

    def set_flag(self, flag: Any) -> None:
        expect(flag, self._state.real.BuilderFlag, "set_flag")
        self._flags.add(flag.name)

    def get_flag(self, flag: Any) -> bool:
        expect(flag, self._state.real.BuilderFlag, "get_flag")
        return flag.name in self._flags

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        expect(pool, self._state.real.MemoryPoolType, "set_memory_pool_limit")
        self._pools[pool.name] = int(size)

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized: bytes) -> TimingCache | None:
        if not serialized:
            return TimingCache(self._state)
        try:
            doc = json.loads(bytes(serialized))
            entries = doc["entries"]
        except (ValueError, KeyError, TypeError):
            self._state.error("create_timing_cache: the serialized cache is invalid")
            return None
        return TimingCache(self._state, entries)

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self._cache


class Builder(Mirrored):
    real_name = "Builder"

    def __init__(self, state: StandinState, logger: Any) -> None:
        super().__init__(state)
        expect(logger, state.real.ILogger, "Builder")

    def create_network(self, flags: int = 0) -> NetworkDefinition:
        return NetworkDefinition(self._state, int(flags))

    def create_builder_config(self) -> BuilderConfig:
        return BuilderConfig(self._state)

    def create_optimization_profile(self) -> OptimizationProfile:
        return OptimizationProfile(self._state)

    def build_serialized_network(self, network: NetworkDefinition,
                                 config: BuilderConfig) -> HostMemory | None:
        from tests.tensorrt.standin.standin_plan import plan_bytes

        self._state.count("builds")
        if self._state.take_fault("build_serialized_network"):
            return None
        if network._onnx is None:
            self._state.error("build_serialized_network: the network is empty (nothing parsed)")
            return None
        data = plan_bytes(self._state, network, config)
        return None if data is None else HostMemory(self._state, data)


def signature(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def make_standin(real: ModuleType, gpu_product: str, compute_capability: str) -> ModuleType:
    """The stand-in ``tensorrt`` module over ``real`` (NVIDIA's bindings of one version)."""
    from tests.tensorrt.standin import standin_engine

    state = StandinState(real, gpu_product, compute_capability)
    module = ModuleType("tensorrt", __doc__)

    def bound(fake: type) -> type:
        # a class whose instances carry this module's state, named as the real class
        def __init__(self: Any, *args: Any) -> None:
            fake.__init__(self, state, *args)

        return type(fake.real_name, (fake,), {"__init__": __init__, "__module__": "tensorrt"})

    module.__dict__.update(
        __version__=state.version, __file__=str(Path(__file__)), standin=state,
        Builder=bound(Builder), OnnxParser=bound(OnnxParser),
        Runtime=bound(standin_engine.Runtime))
    # every other name is the real one, or missing as in the real module
    module.__getattr__ = lambda name: getattr(real, name)  # type: ignore[method-assign]
    return module
