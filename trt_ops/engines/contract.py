"""The engine contract: what every backend records about an engine it built, as one typed record.

A backend's ``build`` returns one of these (:class:`TensorRTEngine`, :class:`OnnxRuntimeEngine`);
the build stage stores ``engine.model_dump(mode="json")`` as its manifest's ``info["metadata"]``;
validate, benchmark, register, the registry's lineage, the ``trt_engine`` MLflow flavor and a
Triton ``config.pbtxt`` writer read it back with :func:`engine_from_metadata`. So a field that a
backend forgets is a type error where it builds the record and a validation error naming the
field where metadata is read, never a ``KeyError`` deep in another module.

Fields: backend and backend version, precision, the catalog target, the hardware it was built
for (a GPU product and compute capability, or a CPU instruction-set class), the I/O tensors
(name, numpy dtype, shape with -1 for dynamic dims), the shape profile (min/opt/max per dynamic
input), the backend's builder settings, the engine file's sha256 and size, and the build time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from trt_ops.engines.base import Precision
from trt_ops.engines.tensorrt.settings import BuilderSettings
from trt_ops.errors import EngineContractError

CONTRACT_VERSION: Literal[1] = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Record):
    """One engine input or output."""

    name: str = Field(min_length=1)
    dtype: str = Field(min_length=1, description="numpy dtype name, e.g. float32")
    shape: list[int] = Field(description="dims; -1 where the dim is dynamic")

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


class ShapeRange(_Record):
    """The shapes one dynamic input may take: min <= opt <= max in every dim."""

    min: list[int]
    opt: list[int]
    max: list[int]

    @model_validator(mode="after")
    def _ordered(self) -> ShapeRange:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError(f"min {self.min}, opt {self.opt} and max {self.max} differ in rank")
        if any(d < 1 for d in self.min):
            raise ValueError(f"min {self.min} has a dim below 1")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"not ordered: min {self.min}, opt {self.opt}, max {self.max}")
        return self


def profile_ranges(profile: Mapping[str, Mapping[str, list[int]]]) -> dict[str, ShapeRange]:
    """A spec's shape profile (input -> {"min", "opt", "max"}) as checked ranges."""
    return {name: ShapeRange(min=list(r["min"]), opt=list(r["opt"]), max=list(r["max"]))
            for name, r in profile.items()}


class GpuHardware(_Record):
    """The GPU an engine was built on."""

    kind: Literal["gpu"] = "gpu"
    gpu_product: str = Field(min_length=1, description="as nvidia-smi names it")
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    sm_count: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None


class CpuHardware(_Record):
    """The CPU class an engine was optimized for."""

    kind: Literal["cpu"] = "cpu"
    cpu_isa: str = Field(min_length=1, description="e.g. x86_64-avx512_vnni")
    cpu_model: str | None = None


Hardware = Annotated[GpuHardware | CpuHardware, Field(discriminator="kind")]


class TimingCacheRecord(_Record):
    """What a TensorRT build did with the shared timing cache."""

    enabled: bool
    hit: bool = False
    loaded_bytes: int = 0
    key: str | None = None
    saved: dict[str, Any] | None = None  # the stored cache's artifact record
    save_error: str | None = None  # the build succeeded, the cache could not be saved


class OnnxRuntimeSettings(_Record):
    """How an onnxruntime engine was optimized, and how it is loaded."""

    graph_optimization_level: Literal["ORT_ENABLE_ALL"] = "ORT_ENABLE_ALL"
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    load_graph_optimization_level: Literal["ORT_DISABLE_ALL"] = "ORT_DISABLE_ALL"


class EngineContract(_Record):
    """The fields every backend records; see the module docstring."""

    contract_version: Literal[1] = CONTRACT_VERSION
    backend: str
    backend_version: str = Field(min_length=1)
    precision: Precision
    target: str | None = Field(default=None,
                               description="the target catalog class it was built for")
    hardware: Hardware
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    profile: dict[str, ShapeRange] = Field(default_factory=dict)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, description="bytes of the engine file")
    build_seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _profile_fits_inputs(self) -> EngineContract:
        inputs = {t.name: t for t in self.inputs}
        unknown = sorted(set(self.profile) - set(inputs))
        if unknown:
            raise ValueError(f"the profile names {unknown}, which are not inputs "
                             f"({sorted(inputs)})")
        for name, spec in inputs.items():
            shapes = self.profile.get(name)
            if shapes is None:
                continue
            if len(shapes.min) != len(spec.shape) or any(
                    d >= 0 and (lo, hi) != (d, d)
                    for d, lo, hi in zip(spec.shape, shapes.min, shapes.max)):
                raise ValueError(f"the profile of {name!r} (min {shapes.min}, max {shapes.max}) "
                                 f"does not fit its shape {spec.shape}")
        return self

    def max_batch(self) -> int | None:
        """The largest first dim any profile allows (None without a profile)."""
        return min((r.max[0] for r in self.profile.values()), default=None)

    def hardware_name(self) -> str:
        hw = self.hardware
        return hw.gpu_product if isinstance(hw, GpuHardware) else hw.cpu_isa


class TensorRTEngine(EngineContract):
    backend: Literal["tensorrt"] = "tensorrt"
    hardware: GpuHardware
    builder: BuilderSettings
    strongly_typed: Literal[True] = True
    timing_cache: TimingCacheRecord
    layers: dict[str, Any] | None = Field(default=None,
                                          description="the layer report's summary")


class OnnxRuntimeEngine(EngineContract):
    backend: Literal["onnxruntime"] = "onnxruntime"
    hardware: CpuHardware
    builder: OnnxRuntimeSettings = Field(default_factory=OnnxRuntimeSettings)


AnyEngine = Annotated[TensorRTEngine | OnnxRuntimeEngine, Field(discriminator="backend")]
_ADAPTER: TypeAdapter[TensorRTEngine | OnnxRuntimeEngine] = TypeAdapter(AnyEngine)
E = TypeVar("E", bound=EngineContract)


def engine_from_metadata(metadata: Mapping[str, Any] | EngineContract,
                         where: str = "the engine's metadata") -> TensorRTEngine | OnnxRuntimeEngine:
    """The engine record of a manifest's ``info["metadata"]`` (or MLmodel entry), validated.

    Raises :class:`EngineContractError` naming every missing or bad field.
    """
    if isinstance(metadata, (TensorRTEngine, OnnxRuntimeEngine)):
        return metadata
    try:
        return _ADAPTER.validate_python(dict(metadata) if isinstance(metadata, Mapping) else metadata)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                             for e in exc.errors())
        raise EngineContractError(
            f"{where} does not fit the engine contract (version {CONTRACT_VERSION}): {problems}",
            "rebuild the engine with this trt-ops (its build stage records the whole contract), "
            "or pass the build stage's info.metadata unchanged") from None


def expect_engine(engine: EngineContract, kind: type[E], backend: str) -> E:
    """``engine`` as the record type of ``backend``; refuses another backend's engine."""
    if not isinstance(engine, kind):
        raise EngineContractError(f"the {backend} backend was handed a {engine.backend} engine",
                                  f"load {engine.backend} engines with the {engine.backend} backend")
    return engine
