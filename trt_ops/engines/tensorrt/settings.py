"""TensorRT builder settings and the rules around them, checked without TensorRT.

The spec's builder options (:class:`BuilderSettings`, a pydantic model whose JSON schema shows
in the pipeline's forms), the TensorRT versions this backend supports, shape profiles against a
network's inputs, and whether an engine runs on a given GPU and runtime (hardware and version
compatibility).

The oldest supported TensorRT is 10.6 (:data:`MIN_VERSION`), chosen for the strongly typed
Q/DQ path this backend builds: its ONNX parser is the first built on ONNX 1.17, which reads
opset 22, the opset Model Optimizer's AutoCast writes for bf16 (Q/DQ with fp16 scales needs 19);
Model Optimizer itself treats 10.6 as the first TensorRT with data-dependent-shape ops; and the
10.x API it has (``STRONGLY_TYPED`` networks, ``execute_async_v3``, named I/O tensors, version-
and hardware-compatible plans, the engine inspector) is what the builder and runner call,
type-checked against the real 10.6 bindings. Newer options are checked per version:
``same_compute_capability`` needs 10.9 (:data:`OPTION_SINCE`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from trt_ops.engines.base import ShapeProfile
from trt_ops.errors import EngineError, PrecisionError, SpecError

if TYPE_CHECKING:
    from trt_ops.engines.contract import TensorRTEngine
    from trt_ops.targets.catalog import Target
    from trt_ops.targets.host import HostInfo

MIN_VERSION = (10, 6)
# Precisions that need a newer GPU than the rest (compute capability major, minor)
MIN_COMPUTE_CAPABILITY = {"fp8": (8, 9), "bf16": (8, 0)}
HardwareCompatibility = Literal["none", "ampere_plus", "same_compute_capability"]
ProfilingVerbosity = Literal["detailed", "layer_names_only", "none"]
HARDWARE_COMPATIBILITY: tuple[str, ...] = HardwareCompatibility.__args__  # type: ignore[attr-defined]
PROFILING_VERBOSITY: tuple[str, ...] = ProfilingVerbosity.__args__  # type: ignore[attr-defined]
# option values that need a TensorRT newer than MIN_VERSION: (option, value) -> first version
OPTION_SINCE = {("hardware_compatibility", "same_compute_capability"): (10, 9)}


class BuilderSettings(BaseModel):
    """The spec's builder options for the tensorrt backend, checked before any build starts."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              title="TensorRT builder options")

    optimization_level: int = Field(
        default=3, ge=0, le=5,
        description="How long the builder searches for faster kernels: 0 (fastest build) to 5 "
                    "(longest search); 3 is TensorRT's default.")
    hardware_compatibility: HardwareCompatibility = Field(
        default="none",
        description="Which GPUs besides the build GPU's model may run the engine: none, "
                    "ampere_plus (any Ampere or newer GPU) or same_compute_capability (GPUs of "
                    "the build GPU's compute capability; TensorRT 10.9 or newer).")
    version_compatible: bool = Field(
        default=False, description="The plan also runs on later TensorRT runtimes: later 10.x or 11.x "
                           "for a 10.x plan, later 11.x for an 11.x plan.")
    exclude_lean_runtime: bool = Field(
        default=False, description="With version_compatible: leave the lean runtime out of the plan "
                           "(smaller; a worker with another TensorRT then needs the build "
                           "version's lean runtime library).")
    workspace_mib: int | None = Field(
        default=None, gt=0, description="Limit of the builder's scratch GPU memory in MiB; unset: "
                                "TensorRT's default (the GPU's memory).")
    profiling_verbosity: ProfilingVerbosity = Field(
        default="detailed", description="What the engine inspector can report; the layer report needs "
                                "detailed.")
    timing_cache: bool = Field(
        default=True, description="Start from, and add to, the timing cache shared through the artifact "
                          "store per GPU product and TensorRT version.")

    @model_validator(mode="after")
    def _lean_runtime_needs_version_compatible(self) -> BuilderSettings:
        if self.exclude_lean_runtime and not self.version_compatible:
            raise PydanticCustomError("lean_runtime", "exclude_lean_runtime is set without "
                                                      "version_compatible")
        return self

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BuilderSettings:
        """The settings of a spec's options dict; bad options raise :class:`SpecError`."""
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            raise _spec_error(exc, options) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def check_supported_by(self, version: str) -> None:
        """Refuses, before building, an option value that TensorRT ``version`` does not have."""
        for (option, value), since in OPTION_SINCE.items():
            if getattr(self, option) == value and parse_version(version)[:2] < since:
                need = ".".join(map(str, since))
                raise SpecError(f"tensorrt builder option {option}={value!r} needs TensorRT "
                                f"{need} or newer; this worker has {version}",
                                f"install tensorrt>={need} on this target's workers, or choose "
                                f"another {option}")


# what the spec's author reads for each option's bad value: (what is wrong, how to fix it)
_FIXES = {
    "optimization_level": ("is out of range", ("use an integer from 0 (fastest build) to 5 "
                                               "(longest search); 3 is TensorRT's default")),
    "hardware_compatibility": ("is unknown", f"use one of {list(HARDWARE_COMPATIBILITY)}"),
    "profiling_verbosity": ("is unknown", f"use one of {list(PROFILING_VERBOSITY)}"),
    "workspace_mib": ("is not a positive integer", ("give the limit in MiB, e.g. "
                                                    "workspace_mib: 4096, or leave it out")),
    **{flag: ("is not a boolean", f"write {flag}: true or false")
       for flag in ("version_compatible", "exclude_lean_runtime", "timing_cache")},
}


def _spec_error(exc: ValidationError, options: dict[str, Any]) -> SpecError:
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return SpecError(f"unknown tensorrt builder options {unknown}",
                         f"use only {sorted(BuilderSettings.model_fields)} under the spec's "
                         "tensorrt options")
    first = errors[0]
    if not first["loc"]:  # a rule across options
        return SpecError(f"tensorrt builder option {first['msg']}",
                         "set version_compatible: true as well, or drop exclude_lean_runtime")
    option = str(first["loc"][0])
    what, fix = _FIXES[option]
    return SpecError(f"tensorrt builder option {option}={options.get(option)!r} {what}", fix)


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
        oldest = ".".join(map(str, MIN_VERSION))
        raise EngineError(
            f"TensorRT {version} is too old for this backend (it builds strongly typed Q/DQ "
            f"engines with TensorRT {oldest} or newer)",
            f"install tensorrt>={oldest} on the GPU workers (pip install 'trt-ops[tensorrt]')",
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


def check_engine_compatible(engine: TensorRTEngine, host: HostInfo, runtime_version: str) -> None:
    """Raises :class:`EngineError` if ``host`` with TensorRT ``runtime_version`` cannot run ``engine``."""
    built_on = engine.hardware
    if not host.gpus:
        raise EngineError(f"this TensorRT engine needs an NVIDIA GPU ({built_on.gpu_product}), but "
                          f"worker {host.hostname!r} has none",
                          "run this task on a worker of the engine's GPU queue")
    gpu = host.gpus[0]
    level = engine.builder.hardware_compatibility
    built_cc, host_cc = _cc(built_on.compute_capability), _cc(gpu.compute_capability)
    if level == "none" and gpu.product != built_on.gpu_product:
        raise EngineError(f"the engine was built for {built_on.gpu_product!r}, this worker has "
                          f"{gpu.product!r}",
                          "run it on a worker with that GPU, or fetch the engine built for this GPU")
    if level == "same_compute_capability" and host_cc != built_cc:
        raise EngineError(f"the engine was built for compute capability "
                          f"{built_on.compute_capability}, this worker's {gpu.product!r} has "
                          f"{gpu.compute_capability}",
                          "run it on a GPU of the same compute capability, or rebuild for this one")
    if level == "ampere_plus" and (host_cc is None or host_cc < (8, 0)):
        raise EngineError(f"the engine is built for Ampere and newer GPUs, this worker's "
                          f"{gpu.product!r} has compute capability {gpu.compute_capability}",
                          "run it on an Ampere (8.0) or newer GPU")
    built = engine.backend_version
    if built == runtime_version:
        return
    if not engine.builder.version_compatible:
        raise EngineError(f"the engine was built with TensorRT {built}, this worker has {runtime_version}",
                          f"install tensorrt=={built} here, or rebuild the engine with this worker's "
                          "TensorRT (or with version_compatible: true)")
    if not runs_version_compatible(built, runtime_version):
        raise EngineError(f"the version-compatible engine built with TensorRT {built} cannot run on "
                          f"TensorRT {runtime_version} (only on {built} or later of the same major, "
                          "or 11.x for a 10.x engine)",
                          f"install a TensorRT of {parse_version(built)[0]}.x >= {built} here, "
                          "or rebuild")


def runs_version_compatible(built: str, runtime: str) -> bool:
    """Whether a version-compatible plan of TensorRT ``built`` runs on ``runtime``: the same or a
    later runtime of the same major, or 11.x for a 10.x plan (NVIDIA's support matrix)."""
    b, r = parse_version(built), parse_version(runtime)
    return r >= b and (r[:1] == b[:1] or (b[:1], r[:1]) == ((10,), (11,)))


def version_requirement(built: str, version_compatible: bool) -> str:
    """The pip requirement of the TensorRT that runs a plan built with ``built``."""
    if not version_compatible:
        return f"tensorrt=={built}"
    major = parse_version(built)[0]
    return f"tensorrt>={built},<{12 if major == 10 else major + 1}"


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
