"""The TensorRT backend: strongly typed engines built from Q/DQ ONNX, one per GPU product.

Precision lives in the ONNX graph (ModelOpt's Q/DQ nodes for int8/fp8, AutoCast's casts for
fp16/bf16), and the network is strongly typed, so the builder never picks precisions itself.
That is the only path TensorRT 11 has, and it works the same on 10.x, where strong typing is
the ``STRONGLY_TYPED`` network flag (11.x ignores the flag: strong typing is always on).

``build`` parses the ONNX with ``OnnxParser`` (every parser error reported with its node),
applies the spec's builder options (:class:`BuilderSettings`) and shape profile, starts from
the stored timing cache of this GPU product and TensorRT version (:mod:`.tensorrt_cache`),
serializes the plan, and writes a layer report from the engine inspector
(:mod:`.tensorrt_report`) beside it.

``load`` returns a :class:`TensorRTRunner`. It deserializes an engine only after checking its
sha256: the store's ``fetch`` has already verified the file against the manifest, and the
runner checks the bytes it is about to deserialize against ``metadata["sha256"]`` once more,
since a plan is executable code.

CUDA memory and streams come from PyTorch (``torch.cuda``): torch is a core dependency and has
CUDA on GPU workers, so device buffers are torch tensors and each concurrent stream is a
``torch.cuda.Stream`` with its own execution context. TensorRT and torch are imported inside
functions, so this module imports on machines without either.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_ops.digest import sha256_bytes
from trt_ops.engines.base import (
    CAST,
    QUANTIZED,
    BuildRequest,
    BuildResult,
    EngineBackend,
    Runner,
    ShapeProfile,
    check_precision_name,
)
from trt_ops.engines.tensorrt_cache import Combine
from trt_ops.errors import EngineError, IntegrityError, PrecisionError, SpecError

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

    from trt_ops.hardware import HostInfo
    from trt_ops.targets import Target

log = logging.getLogger(__name__)

MIN_VERSION = (10, 0)
# Precisions that need a newer GPU than the rest (compute capability major, minor)
MIN_COMPUTE_CAPABILITY = {"fp8": (8, 9), "bf16": (8, 0)}
HARDWARE_COMPATIBILITY = ("none", "ampere_plus", "same_compute_capability")
PROFILING_VERBOSITY = ("detailed", "layer_names_only", "none")
LEAN_RUNTIME_ENV = "TRT_OPS_TRT_LEAN_RUNTIME"
# engine tensor DataType name -> torch dtype name
TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
                "UINT8": "uint8", "INT32": "int32", "INT64": "int64", "BOOL": "bool"}


# --- pure parts: spec to builder settings, profiles, versions, compatibility -----------------

@dataclasses.dataclass(frozen=True)
class BuilderSettings:
    """The spec's ``options`` for the tensorrt backend, checked before any build starts."""

    optimization_level: int = 3           # 0..5: higher searches longer for faster kernels
    hardware_compatibility: str = "none"  # none | ampere_plus | same_compute_capability
    version_compatible: bool = False      # the plan runs on later TensorRT runtimes too
    exclude_lean_runtime: bool = False    # ...without embedding the lean runtime (smaller plan)
    workspace_mib: int | None = None      # builder scratch memory limit; None: TensorRT's default
    profiling_verbosity: str = "detailed"  # detailed is what the layer report needs
    timing_cache: bool = True             # load/save the shared timing cache

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BuilderSettings:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise SpecError(f"unknown tensorrt builder options {unknown}",
                            f"use only {sorted(fields)} under the spec's tensorrt options")
        settings = cls(**options)
        settings._check()
        return settings

    def _check(self) -> None:
        def bad(what: str, fix: str) -> SpecError:
            return SpecError(f"tensorrt builder option {what}", fix)

        if not isinstance(self.optimization_level, int) or not 0 <= self.optimization_level <= 5:
            raise bad(f"optimization_level={self.optimization_level!r} is out of range",
                      "use an integer from 0 (fastest build) to 5 (longest search); 3 is TensorRT's default")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise bad(f"hardware_compatibility={self.hardware_compatibility!r} is unknown",
                      f"use one of {list(HARDWARE_COMPATIBILITY)}")
        if self.profiling_verbosity not in PROFILING_VERBOSITY:
            raise bad(f"profiling_verbosity={self.profiling_verbosity!r} is unknown",
                      f"use one of {list(PROFILING_VERBOSITY)}")
        for name in ("version_compatible", "exclude_lean_runtime", "timing_cache"):
            if not isinstance(getattr(self, name), bool):
                raise bad(f"{name}={getattr(self, name)!r} is not a boolean", f"write {name}: true or false")
        if self.exclude_lean_runtime and not self.version_compatible:
            raise bad("exclude_lean_runtime is set without version_compatible",
                      "set version_compatible: true as well, or drop exclude_lean_runtime")
        if self.workspace_mib is not None and (
                not isinstance(self.workspace_mib, int) or self.workspace_mib <= 0):
            raise bad(f"workspace_mib={self.workspace_mib!r} is not a positive integer",
                      "give the limit in MiB, e.g. workspace_mib: 4096, or leave it out")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_version(version: str) -> tuple[int, ...]:
    """``"10.16.1.11"`` -> ``(10, 16, 1, 11)``; non-numeric parts (``"11.0.0rc1"``) are cut off."""
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def needs_strongly_typed_flag(version: str) -> bool:
    """10.x makes a network strongly typed only when asked; 11.x always does (and ignores the flag)."""
    return parse_version(version)[:1] < (11,)


def check_supported_version(version: str) -> None:
    if parse_version(version)[:2] < MIN_VERSION:
        raise EngineError(
            f"TensorRT {version} is too old for this backend (strongly typed Q/DQ builds need 10.x+)",
            "install tensorrt>=10.6 on the GPU workers (pip install 'trt-ops[tensorrt]')",
        )


def resolve_profile(inputs: dict[str, list[int]], profile: ShapeProfile) -> dict[str, dict[str, list[int]]]:
    """min/opt/max of every dynamic network input, checked against the network's own shapes.

    ``inputs`` maps each network input to its dims as parsed (-1 where dynamic). Static inputs
    need no profile; a profile entry for one must repeat its shape.
    """
    unknown = sorted(set(profile) - set(inputs))
    if unknown:
        raise SpecError(f"the shape profile names inputs {unknown} that the model does not have",
                        f"the model's inputs are {sorted(inputs)}; fix the names in the spec's profile")
    resolved = {}
    for name, dims in inputs.items():
        spec = profile.get(name)
        dynamic = any(d < 0 for d in dims)
        if spec is None:
            if dynamic:
                raise SpecError(
                    f"input {name!r} has dynamic dims {dims} but the spec gives no shape profile for it",
                    f"add profile: {{{name}: {{min: [...], opt: [...], max: [...]}}}} with concrete "
                    f"dims of length {len(dims)}",
                )
            continue
        missing = [k for k in ("min", "opt", "max") if k not in spec]
        if missing:
            raise SpecError(f"the shape profile of input {name!r} lacks {missing}",
                            "give min, opt and max shapes for every profiled input")
        shapes = {k: [int(d) for d in spec[k]] for k in ("min", "opt", "max")}
        for k, shape in shapes.items():
            if len(shape) != len(dims):
                raise SpecError(f"profile {k} shape {shape} of input {name!r} has {len(shape)} dims, "
                                f"the model's input has {len(dims)} ({dims})",
                                f"write {k} with {len(dims)} dims")
            fixed = [i for i, d in enumerate(dims) if d >= 0 and shape[i] != d]
            if fixed:
                raise SpecError(f"profile {k} shape {shape} of input {name!r} changes static dims "
                                f"{fixed} of the model's shape {dims}",
                                "only dims that are -1 in the model may vary; copy the others")
            if any(d < 1 for d in shape):
                raise SpecError(f"profile {k} shape {shape} of input {name!r} has a dim below 1",
                                "profile dims must be concrete positive sizes")
        if not all(a <= b <= c for a, b, c in zip(shapes["min"], shapes["opt"], shapes["max"])):
            raise SpecError(f"profile of input {name!r} is not ordered: min {shapes['min']}, "
                            f"opt {shapes['opt']}, max {shapes['max']}",
                            "each dim must satisfy min <= opt <= max")
        if dynamic or spec is not None:
            resolved[name] = shapes
    return resolved


def check_input_shape(name: str, shape: tuple[int, ...], low: list[int], high: list[int]) -> None:
    """Refuses a feed whose shape lies outside the engine's optimization profile."""
    ok = len(shape) == len(low) and all(a <= s <= b for a, s, b in zip(low, shape, high))
    if not ok:
        raise EngineError(f"input {name!r} has shape {list(shape)}, outside the engine's profile "
                          f"(min {low}, max {high})",
                          "feed shapes within the profile, or rebuild with a profile that covers them")


def _cc(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def check_engine_compatible(metadata: dict[str, Any], host: HostInfo, runtime_version: str) -> None:
    """Raises :class:`EngineError` if ``host`` with TensorRT ``runtime_version`` cannot run the engine."""
    product = metadata.get("gpu_product")
    if not host.gpus:
        raise EngineError(f"this TensorRT engine needs an NVIDIA GPU ({product}), but worker "
                          f"{host.hostname!r} has none",
                          "run this task on a worker of the engine's GPU queue")
    gpu = host.gpus[0]
    level = metadata.get("builder", {}).get("hardware_compatibility", "none")
    built_cc, host_cc = _cc(metadata.get("compute_capability")), _cc(gpu.compute_capability)
    if level == "none" and gpu.product != product:
        raise EngineError(f"the engine was built for {product!r}, this worker has {gpu.product!r}",
                          "run it on a worker with that GPU, or fetch the engine built for this GPU")
    if level == "same_compute_capability" and host_cc != built_cc:
        raise EngineError(f"the engine was built for compute capability {metadata.get('compute_capability')}, "
                          f"this worker's {gpu.product!r} has {gpu.compute_capability}",
                          "run it on a GPU of the same compute capability, or rebuild for this one")
    if level == "ampere_plus" and (host_cc is None or host_cc < (8, 0)):
        raise EngineError(f"the engine is built for Ampere and newer GPUs, this worker's "
                          f"{gpu.product!r} has compute capability {gpu.compute_capability}",
                          "run it on an Ampere (8.0) or newer GPU")
    built = str(metadata.get("tensorrt_version", ""))
    if built == runtime_version:
        return
    b, r = parse_version(built), parse_version(runtime_version)
    if not metadata.get("builder", {}).get("version_compatible"):
        raise EngineError(f"the engine was built with TensorRT {built}, this worker has {runtime_version}",
                          f"install tensorrt=={built} here, or rebuild the engine with this worker's "
                          "TensorRT (or with version_compatible: true)")
    # version-compatible plans run on the same or a later runtime of the same major, or 10 -> 11
    if r < b or not (r[:1] == b[:1] or (b[:1], r[:1]) == ((10,), (11,))):
        raise EngineError(f"the version-compatible engine built with TensorRT {built} cannot run on "
                          f"TensorRT {runtime_version} (only on {built} or later of the same major, "
                          "or 11.x for a 10.x engine)",
                          f"install a TensorRT of {b[:1][0] if b else '?'}.x >= {built} here, or rebuild")


def check_min_compute_capability(precision: str, target: Target) -> None:
    needed = MIN_COMPUTE_CAPABILITY.get(precision)
    if needed is None:
        return
    have = _cc(target.compute_capability)
    want = f"{needed[0]}.{needed[1]}"
    if have is None:
        raise PrecisionError(f"{precision} needs compute capability >= {want}, and target "
                             f"{target.name!r} does not say its compute capability",
                             f"add compute_capability to class {target.name!r} in the target catalog")
    if have < needed:
        raise PrecisionError(f"{precision} needs compute capability >= {want}; target {target.name!r} "
                             f"({target.gpu_product}) has {target.compute_capability}",
                             "choose int8 or fp16 for this target, or build for a newer GPU class")


def onnx_node_counts(onnx_path: Path) -> tuple[int, dict[str, int]]:
    """Node count and op histogram of an ONNX file (weights not loaded)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    return sum(ops.values()), dict(ops)


# --- TensorRT parts -------------------------------------------------------------------------

_LOGGER: trt.ILogger | None = None


def _trt_logger() -> trt.ILogger:
    import tensorrt as trt

    global _LOGGER
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def _host_bytes(memory: trt.IHostMemory) -> bytes:
    # the stub omits __buffer__, but IHostMemory implements the buffer protocol at runtime
    data: bytes = bytes(memory)  # type: ignore[call-overload]
    return data


def _dims(dims: trt.Dims) -> list[int]:
    return [int(dims[i]) for i in range(len(dims))]


def _parse(builder: trt.Builder, onnx_path: Path, flags: int) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _trt_logger())
    # from the file, not from bytes, so that external weight files next to it are found
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            where = f"node {e.node()} {e.node_name()!r} ({e.node_operator()})" if e.node() >= 0 else "graph"
            errors.append(f"  {where}: {e.desc()}")
        raise EngineError(
            f"TensorRT's ONNX parser rejected {onnx_path.name} ({parser.num_errors} errors):\n"
            + "\n".join(errors),
            "check that the calibrated model uses ops and Q/DQ patterns this TensorRT supports "
            "(a newer TensorRT or ONNX opset may help); the nodes above are where it failed",
        )
    return network, parser


def _configure(builder: trt.Builder, network: trt.INetworkDefinition, settings: BuilderSettings,
               profile: ShapeProfile) -> tuple[trt.IBuilderConfig, dict[str, dict[str, list[int]]]]:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.builder_optimization_level = settings.optimization_level
    config.hardware_compatibility_level = {
        "none": trt.HardwareCompatibilityLevel.NONE,
        "ampere_plus": trt.HardwareCompatibilityLevel.AMPERE_PLUS,
        "same_compute_capability": trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY,
    }[settings.hardware_compatibility]
    config.profiling_verbosity = {
        "detailed": trt.ProfilingVerbosity.DETAILED,
        "layer_names_only": trt.ProfilingVerbosity.LAYER_NAMES_ONLY,
        "none": trt.ProfilingVerbosity.NONE,
    }[settings.profiling_verbosity]
    if settings.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if settings.exclude_lean_runtime:
        config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    if settings.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    inputs = {network.get_input(i).name: _dims(network.get_input(i).shape)
              for i in range(network.num_inputs)}
    shapes = resolve_profile(inputs, profile)
    if shapes:
        opt_profile = builder.create_optimization_profile()
        for name, s in shapes.items():
            opt_profile.set_shape(name, trt.Dims(s["min"]), trt.Dims(s["opt"]), trt.Dims(s["max"]))
        config.add_optimization_profile(opt_profile)
    return config, shapes


def _attach_timing_cache(config: trt.IBuilderConfig, stored: bytes | None) -> bool:
    """Gives the builder the stored cache (or an empty one); True if the stored one was taken."""
    if stored:
        try:
            cache = config.create_timing_cache(stored)
            if cache is not None and config.set_timing_cache(cache, False):
                return True
        except Exception as exc:  # noqa: BLE001 - a rejected cache only costs build time
            log.warning("TensorRT rejected the stored timing cache (%s); building without it", exc)
        else:
            log.warning("TensorRT rejected the stored timing cache; building without it")
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return False


def _combiner(config: trt.IBuilderConfig) -> Combine:
    """``ITimingCache.combine`` as the bytes -> bytes merge that :mod:`.tensorrt_cache` uses."""

    def combine(stored: bytes, ours: bytes) -> bytes:
        merged = config.create_timing_cache(stored)
        if not merged.combine(config.create_timing_cache(ours), False):
            log.warning("TensorRT could not combine the stored timing cache with ours; saving ours")
            return ours
        return _host_bytes(merged.serialize())

    return combine


def _local_gpu() -> dict[str, Any]:
    """Facts about the GPU this process builds on, for the engine's metadata."""
    import torch

    from trt_ops.hardware import gpus

    device = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(device)
    smi = gpus()
    gpu = smi[device] if device < len(smi) else None
    return {
        "gpu_product": gpu.product if gpu else props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "driver_version": gpu.driver_version if gpu else None,
        "cuda_version": torch.version.cuda,
    }


def _runtime(metadata: dict[str, Any], runtime_version: str) -> trt.Runtime:
    import tensorrt as trt

    runtime = trt.Runtime(_trt_logger())
    builder = metadata.get("builder", {})
    if builder.get("version_compatible"):
        if builder.get("exclude_lean_runtime") and metadata.get("tensorrt_version") != runtime_version:
            lean = os.environ.get(LEAN_RUNTIME_ENV)
            if not lean:
                raise EngineError(
                    f"the engine was built with TensorRT {metadata.get('tensorrt_version')} without its "
                    f"lean runtime, and this worker has TensorRT {runtime_version}",
                    f"set {LEAN_RUNTIME_ENV} to that version's libnvinfer_lean library, or rebuild "
                    "without exclude_lean_runtime",
                )
            runtime = runtime.load_runtime(lean)
        # a version-compatible plan carries the lean runtime's host code: trusted after the sha256 check
        runtime.engine_host_code_allowed = True
    return runtime


def _write_layer_report(data: bytes, metadata: dict[str, Any], onnx_path: Path,
                        out: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """Inspects the built engine and writes ``inspector.json`` and ``layer_report.json``."""
    import json

    import tensorrt as trt

    from trt_ops.engines.tensorrt_report import build_report

    runtime = _runtime(metadata, metadata["tensorrt_version"])
    engine = runtime.deserialize_cuda_engine(data)
    info = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    nodes, ops = onnx_node_counts(onnx_path)
    report = build_report(info, nodes, ops)
    files = {"inspector": out / "inspector.json", "layer_report": out / "layer_report.json"}
    files["inspector"].write_text(info)
    files["layer_report"].write_text(json.dumps(report, indent=2))
    return report, files


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
        import torch

        if not torch.cuda.is_available():
            return ("no CUDA device is visible to PyTorch: run on a GPU worker with the NVIDIA "
                    "driver and a CUDA build of torch")
        return None

    def version(self) -> str:
        import tensorrt as trt

        return trt.__version__

    def check_precision(self, precision: str, target: Target) -> None:
        super().check_precision(precision, target)
        check_min_compute_capability(precision, target)

    def calibrator(self, precision: str) -> str:
        check_precision_name(precision)
        if precision in QUANTIZED:
            return "trt_ops.calibrators:modelopt_quantize"
        if precision in CAST:
            return "trt_ops.calibrators:autocast"
        return "trt_ops.calibrators:passthrough"

    def build(self, request: BuildRequest) -> BuildResult:
        import tensorrt as trt

        from trt_ops.engines.tensorrt_cache import TimingCacheStore
        from trt_ops.engines.tensorrt_report import summary_line

        version = trt.__version__
        check_supported_version(version)
        settings = BuilderSettings.from_options(request.options)
        gpu = _local_gpu()
        builder = trt.Builder(_trt_logger())
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) \
            if needs_strongly_typed_flag(version) else 0
        network, _parser = _parse(builder, Path(request.onnx_path), flags)
        config, shapes = _configure(builder, network, settings, request.profile)

        cache_store = None
        if settings.timing_cache and request.store is not None:
            cache_store = TimingCacheStore(request.store, gpu["gpu_product"], version)
        stored = cache_store.load() if cache_store else None
        cache_hit = _attach_timing_cache(config, stored)

        start = time.perf_counter()
        plan = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - start
        if plan is None:
            raise EngineError(f"TensorRT could not build an engine from {Path(request.onnx_path).name} "
                              f"for {gpu['gpu_product']}",
                              "read TensorRT's errors logged above; a larger workspace_mib or a lower "
                              "optimization_level can help when it ran out of memory or tactics")
        data = _host_bytes(plan)
        out = Path(request.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        engine_path = out / self.engine_filename
        engine_path.write_bytes(data)

        cache_info: dict[str, Any] = {"enabled": cache_store is not None, "hit": cache_hit,
                                      "loaded_bytes": len(stored or b"")}
        if cache_store is not None:
            saved = cache_store.save(_host_bytes(config.get_timing_cache().serialize()), _combiner(config))
            cache_info.update(key=cache_store.pointer_key, saved=saved.to_dict())

        metadata: dict[str, Any] = {
            "backend": self.name,
            "tensorrt_version": version,
            "precision": request.precision,
            "target": request.target.name,
            **gpu,
            "strongly_typed": True,
            "builder": settings.to_dict(),
            "profile": shapes,
            "build_seconds": round(seconds, 3),
            "timing_cache": cache_info,
            "sha256": sha256_bytes(data),
            "size": len(data),
        }
        report, files = _write_layer_report(data, metadata, Path(request.onnx_path), out)
        metadata["layers"] = report["summary"]
        log.info("built %s in %.1f s: %s (timing cache %s)", engine_path.name, seconds,
                 summary_line(report), "hit" if cache_hit else "miss")
        return BuildResult(engine_path=engine_path, metadata=metadata, extra_files=files)

    def check_compatible(self, metadata: dict[str, Any], host: HostInfo) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise EngineError(f"cannot run a TensorRT engine here: {reason}",
                              "run validate/benchmark of tensorrt engines on the target's GPU queue")
        check_engine_compatible(metadata, host, self.version())

    def load(self, engine_path: Path, metadata: dict[str, Any]) -> TensorRTRunner:
        data = Path(engine_path).read_bytes()
        expected = metadata.get("sha256")
        if expected and sha256_bytes(data) != expected:
            raise IntegrityError(f"{engine_path} does not match the engine's recorded sha256 {expected}",
                                 "fetch the engine through the artifact store (which verifies it) "
                                 "or rebuild it; never deserialize an unverified plan")
        runtime = _runtime(metadata, self.version())
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineError(f"TensorRT could not deserialize {engine_path}",
                              "read TensorRT's errors logged above: usually a TensorRT version or "
                              "GPU mismatch; rebuild the engine on this worker type")
        return TensorRTRunner(runtime, engine)


# --- runner ---------------------------------------------------------------------------------

class _Stream:
    """One execution context and CUDA stream with its device buffers (grow-only, reused)."""

    def __init__(self, engine: trt.ICudaEngine, device: torch.device) -> None:
        import torch

        self.context = engine.create_execution_context()
        self.stream = torch.cuda.Stream(device)
        self.device = device
        self.buffers: dict[str, torch.Tensor] = {}

    def bind(self, name: str, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
        import torch

        numel = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != dtype:
            with torch.cuda.stream(self.stream):  # allocated on the stream that uses it
                buf = torch.empty(max(numel, 1), dtype=dtype, device=self.device)
            self.buffers[name] = buf
        view = buf[:numel].view(shape)
        if not self.context.set_tensor_address(name, view.data_ptr()):
            raise EngineError(f"TensorRT refused the device buffer of tensor {name!r}",
                              "this is a bug in trt-ops's runner; please report it with the engine")
        return view

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise EngineError("TensorRT failed to enqueue the engine (execute_async_v3 returned False)",
                              "read TensorRT's errors logged above; check input shapes and GPU memory")


class TensorRTRunner(Runner):
    """Runs a deserialized engine: numpy feeds in, numpy outputs out, on PyTorch's CUDA device."""

    def __init__(self, runtime: trt.Runtime, engine: trt.ICudaEngine) -> None:
        import tensorrt as trt
        import torch

        self._runtime: trt.Runtime | None = runtime  # must outlive the engine it deserialized
        self._engine: trt.ICudaEngine | None = engine
        self._device = torch.device("cuda", torch.cuda.current_device())
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self._dtypes = {n: getattr(torch, TORCH_DTYPES[engine.get_tensor_dtype(n).name])
                        for n in names if engine.get_tensor_dtype(n).name in TORCH_DTYPES}
        unsupported = sorted(set(names) - set(self._dtypes))
        if unsupported:
            raise EngineError(f"the engine has I/O tensors {unsupported} of types this runner cannot "
                              f"feed ({[engine.get_tensor_dtype(n).name for n in unsupported]})",
                              "keep the model's inputs and outputs in fp32/fp16/int types "
                              "(ModelOpt's keep_io_types)")
        self._limits = {}
        for n in self.input_names:
            low, _opt, high = engine.get_tensor_profile_shape(n, 0)
            self._limits[n] = (_dims(low), _dims(high))
        self._streams: list[_Stream] = []

    def _stream(self, index: int) -> _Stream:
        if self._engine is None:
            raise EngineError("this TensorRT runner is closed", "load the engine again")
        while len(self._streams) <= index:
            self._streams.append(_Stream(self._engine, self._device))
        return self._streams[index]

    def _stage(self, s: _Stream, feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Copies the feeds to ``s``'s device buffers and binds its outputs; returns the outputs."""
        import torch

        missing = sorted(set(self.input_names) - set(feeds))
        extra = sorted(set(feeds) - set(self.input_names))
        if missing or extra:
            raise EngineError(f"feeds do not match the engine's inputs: missing {missing}, unexpected {extra}",
                              f"feed exactly {self.input_names}")
        with torch.cuda.stream(s.stream):
            for name in self.input_names:
                array = np.ascontiguousarray(feeds[name])
                check_input_shape(name, array.shape, *self._limits[name])
                s.context.set_input_shape(name, tuple(array.shape))
                s.bind(name, list(array.shape), self._dtypes[name]).copy_(
                    torch.from_numpy(array).to(self._dtypes[name]), non_blocking=True)
            outputs = {}
            for name in self.output_names:
                shape = _dims(s.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise EngineError(f"output {name!r} has a data-dependent shape {shape}",
                                      "this runner needs output shapes known from the input shapes")
                outputs[name] = s.bind(name, shape, self._dtypes[name])
        return outputs

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        s = self._stream(0)
        outputs = self._stage(s, feeds)
        s.execute()
        s.stream.synchronize()
        # numpy has no bfloat16: such outputs come back as float32
        return {n: (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()
                for n, t in outputs.items()}

    def run_concurrent(self, feeds: dict[str, np.ndarray], streams: int, iterations: int) -> float:
        """``iterations`` runs round-robin over ``streams`` CUDA streams, one context each; wall seconds.

        Inputs are copied once per stream before timing: this measures the engine's throughput,
        not host-to-device copies.
        """
        import torch

        slots = [self._stream(i) for i in range(max(1, streams))]
        for s in slots:
            self._stage(s, feeds)
        torch.cuda.synchronize(self._device)
        start = time.perf_counter()
        for i in range(iterations):
            slots[i % len(slots)].execute()
        for s in slots:
            s.stream.synchronize()
        return time.perf_counter() - start

    def close(self) -> None:
        for s in self._streams:
            s.stream.synchronize()
        # contexts before the engine that owns them
        self._streams.clear()
        self._engine = None
        self._runtime = None
