"""Building a strongly typed TensorRT engine from a calibrated ONNX, on the GPU it is for.

Parses the ONNX with ``OnnxParser`` (every parser error reported with its node), applies the
builder settings and shape profile, starts from the stored timing cache of this GPU product
and TensorRT version (:mod:`.timing_cache`), serializes the plan and writes a layer report
from the engine inspector (:mod:`.layer_report`) beside it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.engines.base import BuildRequest, BuildResult, ShapeProfile, check_precision_name
from trt_ops.engines.contract import TensorRTEngine, TimingCacheRecord, profile_ranges
from trt_ops.engines.tensorrt.bindings import dims_list, host_bytes, tensor_spec, trt_logger
from trt_ops.engines.tensorrt.device import require_device
from trt_ops.engines.tensorrt.settings import (
    BuilderSettings,
    check_supported_version,
    needs_strongly_typed_flag,
    resolve_profile,
)
from trt_ops.engines.tensorrt.timing_cache import Combine
from trt_ops.errors import EngineError, TrtOpsError
from trt_ops.store.digest import sha256_bytes

if TYPE_CHECKING:
    import tensorrt as trt

    from trt_ops.engines.tensorrt.timing_cache import TimingCacheStore

log = logging.getLogger(__name__)


def _parse(builder: trt.Builder, onnx_path: Path, flags: int) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    import tensorrt as trt

    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger())
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
    # only the chosen member is looked up: the enums differ between TensorRT versions
    # (SAME_COMPUTE_CAPABILITY exists from 10.9), and BuilderSettings.check_supported_by has
    # already refused what this version lacks
    config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel,
                                                  settings.hardware_compatibility.upper())
    config.profiling_verbosity = getattr(trt.ProfilingVerbosity,
                                         settings.profiling_verbosity.upper())
    if settings.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if settings.exclude_lean_runtime:
        config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    if settings.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    inputs = {network.get_input(i).name: dims_list(network.get_input(i).shape)
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
        return host_bytes(merged.serialize())

    return combine


def _write_layer_report(data: bytes, engine: TensorRTEngine, onnx_path: Path,
                        out: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """Inspects the built engine and writes ``inspector.json`` and ``layer_report.json``."""
    import json

    import tensorrt as trt

    from trt_ops.engines.tensorrt.layer_report import build_report, onnx_node_counts
    from trt_ops.engines.tensorrt.runner import deserialize, runtime_for

    runtime = runtime_for(engine, engine.backend_version)
    inspector = deserialize(runtime, data, "the plan it has just built").create_engine_inspector()
    if inspector is None:
        raise EngineError("TensorRT could not create an engine inspector for the built plan",
                          "read TensorRT's errors logged above")
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    nodes, ops = onnx_node_counts(onnx_path)
    report = build_report(info, nodes, ops)
    files = {"inspector": out / "inspector.json", "layer_report": out / "layer_report.json"}
    files["inspector"].write_text(info)
    files["layer_report"].write_text(json.dumps(report, indent=2))
    return report, files


def _load_cache(cache_store: TimingCacheStore | None) -> bytes | None:
    if cache_store is None:
        return None
    try:
        return cache_store.load()
    except TrtOpsError as exc:  # a cache only saves build time
        log.warning("cannot read the stored timing cache (%s); building without it", exc.problem)
        return None


def _save_cache(cache_store: TimingCacheStore, config: trt.IBuilderConfig,
                record: dict[str, Any]) -> None:
    """Merges this build's tactics into the stored cache; a failure only loses those tactics."""
    try:
        cache = config.get_timing_cache()
        if cache is None:
            raise EngineError("TensorRT returned no timing cache after the build")
        record["saved"] = cache_store.save(host_bytes(cache.serialize()), _combiner(config)).to_dict()
    except (TrtOpsError, OSError) as exc:
        problem = exc.problem if isinstance(exc, TrtOpsError) else str(exc)
        log.warning("the engine is built, but its timing cache could not be saved (%s); the "
                    "next build on this GPU times those layers again", problem)
        record["save_error"] = problem


def build_plan(request: BuildRequest, engine_filename: str) -> BuildResult:
    """Builds the engine of ``request`` on this GPU; the plan, its contract and the layer report."""
    import tensorrt as trt

    from trt_ops.engines.tensorrt.layer_report import summary_line
    from trt_ops.engines.tensorrt.timing_cache import TimingCacheStore

    version = trt.__version__
    check_supported_version(version)
    settings = BuilderSettings.from_options(request.options)
    settings.check_supported_by(version)
    precision = check_precision_name(request.precision)
    gpu = require_device().gpu()
    builder = trt.Builder(trt_logger())
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) \
        if needs_strongly_typed_flag(version) else 0
    network, _parser = _parse(builder, Path(request.onnx_path), flags)
    config, shapes = _configure(builder, network, settings, request.profile)

    cache_store = None
    if settings.timing_cache and request.store is not None:
        cache_store = TimingCacheStore(request.store, gpu.gpu_product, version)
    stored = _load_cache(cache_store)
    cache_hit = _attach_timing_cache(config, stored)

    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise EngineError(f"TensorRT could not build an engine from {Path(request.onnx_path).name} "
                          f"for {gpu.gpu_product}",
                          "read TensorRT's errors logged above; a larger workspace_mib or a lower "
                          "optimization_level can help when it ran out of memory or tactics")
    data = host_bytes(plan)
    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine_path = out / engine_filename
    engine_path.write_bytes(data)

    cache: dict[str, Any] = {"enabled": cache_store is not None, "hit": cache_hit,
                             "loaded_bytes": len(stored or b"")}
    if cache_store is not None:
        cache["key"] = cache_store.pointer_key
        _save_cache(cache_store, config, cache)

    engine = TensorRTEngine(
        backend_version=version, precision=precision, target=request.target.name, hardware=gpu,
        inputs=[tensor_spec(network.get_input(i)) for i in range(network.num_inputs)],
        outputs=[tensor_spec(network.get_output(i)) for i in range(network.num_outputs)],
        profile=profile_ranges(shapes), sha256=sha256_bytes(data), size=len(data),
        build_seconds=round(seconds, 3), builder=settings,
        timing_cache=TimingCacheRecord(**cache))
    report, files = _write_layer_report(data, engine, Path(request.onnx_path), out)
    engine = engine.model_copy(update={"layers": report["summary"]})
    log.info("built %s in %.1f s: %s (timing cache %s)", engine_path.name, seconds,
             summary_line(report), "hit" if cache_hit else "miss")
    return BuildResult(engine_path=engine_path, engine=engine, extra_files=files)
