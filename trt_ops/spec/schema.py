"""The pipeline spec as a pydantic schema: one source for the CLI, the DAG's trigger form and the docs.

Every field carries a description and an example; the JSON Schema published with the package
(``trt_ops/spec/pipeline.schema.json``), the Airflow Params form and ``docs/spec.md`` are all
generated from these classes, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from trt_ops.engines.base import PRECISIONS
from trt_ops.engines.tensorrt.settings import BuilderSettings

Precision = Literal["fp8", "int8", "fp16", "bf16", "fp32"]
assert set(Precision.__args__) == set(PRECISIONS)  # type: ignore[attr-defined]
Dtype = Literal["float32", "float16", "int64", "int32", "bool", "uint8"]
Task = Literal["classification", "embedding", "regression"]
CalibrationMethod = Literal["entropy", "minmax", "percentile"]
Recipe = Literal["auto", "static", "dynamic"]
BATCH = "batch"  # the name of axis 0 of every input: the samples of a batch

# Accuracy thresholds per precision where the spec gives none. Errors are on the model's raw
# outputs (logits for a classifier); absolute errors depend on the output scale, so they have no
# default; accuracy_drop applies only where the validation set has labels.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"top1_agreement": 0.999, "min_cosine": 0.9999, "accuracy_drop": 0.001},
    "fp16": {"top1_agreement": 0.99, "min_cosine": 0.999, "accuracy_drop": 0.005},
    "bf16": {"top1_agreement": 0.98, "min_cosine": 0.995, "accuracy_drop": 0.01},
    "int8": {"top1_agreement": 0.98, "min_cosine": 0.98, "accuracy_drop": 0.02},
    "fp8": {"top1_agreement": 0.97, "min_cosine": 0.97, "accuracy_drop": 0.03},
}


class Section(BaseModel):
    """A part of the spec: unknown keys are errors (a typo must not be ignored). Defaults are
    validated like given values, so a spec is the same after a JSON round trip (a plan task's
    XCom): an int default of a float field would otherwise change the stages' cache keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Dim(Section):
    """A dynamic axis: the sizes an engine accepts, and the size it is tuned for."""

    min: PositiveInt = Field(1, description="smallest size the engines accept", examples=[1])
    opt: PositiveInt | None = Field(
        None, description="size the engines are tuned for (TensorRT's optimization profile); "
                          "default: max", examples=[16])
    max: PositiveInt = Field(description="largest size the engines accept", examples=[32])

    @model_validator(mode="after")
    def _ordered(self) -> Dim:
        if not self.min <= self.optimal <= self.max:
            raise ValueError(f"needs min <= opt <= max, got min {self.min}, opt {self.optimal}, "
                             f"max {self.max}")
        return self

    @property
    def optimal(self) -> int:
        return self.max if self.opt is None else self.opt


class InputSpec(Section):
    """One model input: its name, its axes (sizes, or names of dynamic axes) and its dtype."""

    name: str = Field(min_length=1, description="the input's name in the model and the data "
                                                "files", examples=["image"])
    shape: list[int | str] = Field(
        min_length=1,
        description="axes, batch first: a number is a fixed size, a name is a dynamic axis "
                    "declared in model.dims. A shape of numbers only is an example shape whose "
                    "first axis is the dynamic batch",
        examples=[["batch", 3, 224, 224], ["batch", "sequence"], [1, 1, 8, 8]])
    dtype: Dtype = Field("float32", description="numpy dtype of the input", examples=["float32"])

    @model_validator(mode="before")
    @classmethod
    def _batch_first(cls, data: Any) -> Any:
        """An all-numbers example shape: its first axis is the dynamic batch (the default)."""
        if isinstance(data, dict) and isinstance(data.get("shape"), list) and data["shape"] \
                and all(isinstance(d, int) for d in data["shape"]):
            data = {**data, "shape": [BATCH, *data["shape"][1:]]}
        return data

    @model_validator(mode="after")
    def _axes(self) -> InputSpec:
        if self.shape[0] != BATCH:
            raise ValueError(f"the first axis must be the dynamic batch, written {BATCH!r}; got "
                             f"{self.shape[0]!r}")
        bad = [d for d in self.shape[1:] if isinstance(d, int) and d < 1]
        if bad:
            raise ValueError(f"fixed sizes must be positive, got {bad}")
        return self

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape, -1 where the axis is dynamic."""
        return tuple(d if isinstance(d, int) else -1 for d in self.shape[1:])

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, sizes: dict[str, int]) -> list[int]:
        """The shape with each dynamic axis set to ``sizes[name]``."""
        return [d if isinstance(d, int) else sizes[d] for d in self.shape]


SOURCES = ("factory", "program", "registered", "onnx")


class ModelSpec(Section):
    """The source model: exactly one of factory, program, registered or onnx."""

    factory: str | None = Field(
        None, pattern=r"^[\w.]+:[\w]+$",
        description="module:function returning the torch.nn.Module (weights from state_dict)",
        examples=["trt_ops.examples.digits:build_model"])
    state_dict: str | None = Field(
        None, description="the factory's weights, loaded with weights_only=True: a path "
                          "relative to the spec, file:// or s3:// URI", examples=["model.pt"])
    program: str | None = Field(
        None, description="a torch.export program (.pt2) with a dynamic batch axis; one "
                          "carrying pickled records is refused",
        examples=["model.pt2"])
    registered: str | None = Field(
        None, pattern=r"^models:/[^/@]+(/\d+|@[\w-]+)$",
        description="a PyTorch model in the MLflow registry, logged in MLflow's pt2 format "
                    "(a torch.export program); pickled models are refused (registered ONNX "
                    "models go in model.onnx)",
        examples=["models:/encoder@champion"])
    onnx: str | None = Field(
        None, description="an ONNX model (external data beside it): a path relative to the "
                          "spec, file:// or s3:// URI, or models:/name/version (or @alias) of "
                          "a model logged with mlflow.onnx. It is the FP32 reference itself: "
                          "export checks it against the inputs and stores it",
        examples=["model.onnx", "models:/encoder-onnx@champion"])
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of "
                                   "the factory", examples=[{"num_classes": 10}])
    inputs: list[InputSpec] = Field(min_length=1, description="the model's inputs, in the "
                                    "order forward() takes them")
    outputs: list[str] = Field(default_factory=list, description="names given to the model's "
                               "outputs in the ONNX and the engines (default: the exporter's)",
                               examples=[["logits"]])
    dims: dict[str, Dim] = Field(
        default_factory=dict, validate_default=True,
        description="the dynamic axes named in the inputs' shapes; 'batch' defaults to 1..32, "
                    "tuned for 32",
        examples=[{"batch": {"min": 1, "opt": 16, "max": 32},
                   "sequence": {"min": 8, "opt": 128, "max": 256}}])
    task: Task = Field("classification", description="what the outputs are: how validation "
                       "compares them (top-1 agreement for classifiers)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        sources = [k for k in SOURCES if getattr(self, k)]
        if len(sources) != 1:
            raise ValueError(f"name exactly one source model, got {sources or 'none'}: "
                             "model.factory (module:function), model.program (a torch.export "
                             ".pt2 file), model.registered (models:/name/version) or model.onnx "
                             "(an ONNX file)")
        if self.state_dict and not self.factory:
            raise ValueError("state_dict needs a factory that builds the architecture")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"input names repeat: {names}")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"output names repeat: {self.outputs}")
        undeclared = sorted({d for i in self.inputs for d in i.dynamic_axes.values()}
                            - set(self.dims) - {BATCH})
        if undeclared:
            raise ValueError(f"dynamic axes {undeclared} are not declared in model.dims: add "
                             f"e.g. dims: {{{undeclared[0]}: {{min: 1, opt: 128, max: 256}}}}")
        return self

    @field_validator("dims")
    @classmethod
    def _default_batch(cls, dims: dict[str, Dim]) -> dict[str, Dim]:
        return {BATCH: Dim(min=1, opt=32, max=32), **dims}

    def source(self) -> dict[str, Any]:
        """The JSON form recorded in manifests and used to load the model again."""
        d: dict[str, Any] = {k: getattr(self, k) for k in (*SOURCES, "state_dict")
                             if getattr(self, k)}
        if self.kwargs:
            d["kwargs"] = dict(self.kwargs)
        return d

    def dim_ranges(self) -> dict[str, dict[str, int]]:
        """Each dynamic axis as {min, opt, max}: what the stages take."""
        return {n: {"min": d.min, "opt": d.optimal, "max": d.max} for n, d in self.dims.items()}


class DataSpec(Section):
    """Calibration and validation data, and the checks they must pass before any build."""

    calibration: str = Field(description="samples to calibrate on: .npz (one array per input, "
                             "plus lengths.<axis> arrays for samples of different lengths), "
                             ".npy or .parquet; a path relative to the spec, file:// or s3://",
                             examples=["calibration.npz"])
    validation: str = Field(description="held-out samples to validate engines on, labels "
                            "optional (an array named 'labels')", examples=["validation.npz"])
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="allowed value range per input (default: validation "
                                          "within the calibration range + 10%)",
        examples=[{"image": [0.0, 1.0]}])
    min_samples: NonNegativeInt = Field(100, description="fewest samples each set needs")
    classes: PositiveInt | None = Field(None, description="number of classes the validation "
                                        "labels must all cover", examples=[10])

    @model_validator(mode="after")
    def _ranges_ordered(self) -> DataSpec:
        bad = {k: v for k, v in self.ranges.items() if v[0] > v[1]}
        if bad:
            raise ValueError(f"ranges must be [low, high] with low <= high, got {bad}")
        return self


class MixedPrecisionSpec(Section):
    """Accuracy-guided mixed precision (onnxruntime int8, static recipe): the fewest, most
    sensitive layers are kept float until the int8 gate's thresholds pass on held-out
    calibration samples."""

    mode: Literal["off", "on_fail", "always"] = Field(
        "on_fail", description="'on_fail': search only when the plain int8 model fails the gate "
                               "on the held-out samples; 'always': measure every layer's "
                               "sensitivity (for the report) whether it passes or not; 'off': "
                               "plain int8, calibrated on all samples")
    time_limit_s: float = Field(600, gt=0, description="seconds the search may take; when it "
                                "ends before a pass the model is handed on as found (its engine "
                                "then meets its own gate and the precision fallback)")
    max_float_fraction: float = Field(0.25, gt=0, le=1, description="largest share of the "
                                      "quantized layers that may stay float")
    holdout: float = Field(0.25, gt=0, lt=1, description="share of the calibration samples "
                           "(the last ones) held out to check the gate; the ranges are "
                           "calibrated on the rest")
    sensitivity_samples: PositiveInt = Field(32, description="calibration samples (the first "
                                             "ones) each layer's sensitivity is measured on")


class CalibrationSpec(Section):
    """How reduced precisions are calibrated (once per model, precision and backend)."""

    samples: PositiveInt = Field(512, description="calibration samples used (the first N)")
    method: CalibrationMethod = Field("entropy", description="how activation ranges are chosen "
                                      "from the calibration samples, for every backend (Model "
                                      "Optimizer calls minmax 'max'; fp8 always uses max)")
    recipe: Recipe = Field("auto", description="where quantization goes: 'static' (Q/DQ with "
                           "calibrated activation ranges), 'dynamic' (onnxruntime: int8 weights, "
                           "activation ranges taken at run time), or 'auto': chosen from the "
                           "graph (transformers keep Softmax, LayerNorm and the mask in float); "
                           "the choice is recorded in the manifest")
    high_precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="what an int8/fp8 model for TensorRT computes in outside its Q/DQ "
                            "nodes (Model Optimizer's high_precision_dtype): fp32 keeps accuracy, "
                            "fp16 is faster")
    mixed_precision: MixedPrecisionSpec = Field(
        default_factory=MixedPrecisionSpec, description="keep the most sensitive layers float "
        "when int8 fails its gate (onnxruntime int8, static recipe)")


class Thresholds(Section):
    """An accuracy gate: each threshold given must hold for the engine to pass."""

    top1_agreement: float | None = Field(None, ge=0, le=1, description="share of samples whose "
                                         "top-1 class equals the FP32 model's (at least)")
    min_cosine: float | None = Field(None, ge=-1, le=1, description="smallest per-sample "
                                     "cosine similarity to the FP32 outputs (at least)")
    mean_cosine: float | None = Field(None, ge=-1, le=1, description="mean cosine similarity "
                                      "(at least)")
    max_abs_error: float | None = Field(None, ge=0, description="largest absolute error (at "
                                        "most)")
    mean_abs_error: float | None = Field(None, ge=0, description="mean absolute error (at most)")
    accuracy_drop: float | None = Field(None, ge=-1, le=1, description="accuracy lost against "
                                        "the labels (at most)")


class ExportSpec(Section):
    """The export to ONNX and its parity check against PyTorch."""

    atol: float = Field(1e-4, ge=0, description="absolute tolerance of the parity check")
    rtol: float = Field(1e-3, ge=0, description="relative tolerance of the parity check")
    opset: PositiveInt | None = Field(None, description="ONNX opset (default: the exporter's)")


class BenchmarkSpec(Section):
    """Latency and throughput of each engine beside PyTorch on the same machine."""

    batch_sizes: list[PositiveInt] = Field([1, 32], min_length=1, description="batch sizes "
                                           "to time, each within the batch axis's range")
    dims: dict[str, list[PositiveInt]] = Field(
        default_factory=dict, description="sizes of the dynamic axes other than the batch to "
        "time, a row per combination (default: each axis's opt size)",
        examples=[{"sequence": [32, 128]}])
    iterations: PositiveInt = Field(50, description="timed calls per batch size")
    warmup: NonNegativeInt = Field(10, description="untimed calls first")
    streams: PositiveInt = Field(1, description="concurrent streams of the engine as well "
                                 "(CUDA streams on GPUs, threads on CPUs)")
    torch_compile: bool = Field(True, description="also time torch.compile (default mode) "
                                "as a second PyTorch reference")


class RegistrySpec(Section):
    """The MLflow model registry the engines are registered in, as one version."""

    model_name: str | None = Field(None, pattern=r"^[^/@]+$", description="registered model "
                                   "name; empty: nothing is registered", examples=["digits-cnn"])
    tracking_uri: str | None = Field(None, description="MLflow tracking server (default: "
                                     "MLFLOW_TRACKING_URI)", examples=["http://mlflow:5000"])
    registry_uri: str | None = Field(None, description="MLflow registry (default: the "
                                     "tracking URI)")
    promote: bool = Field(False, description="give the new version the 'champion' alias when "
                          "every gate passed ('candidate' is always set)")


class ServingSpec(Section):
    """Publishing the registered engines for serving, after registration."""

    triton_repository: str | None = Field(
        None, description="Triton model repository root to write the registered version into "
                          "(a folder or s3://bucket/prefix); empty: nothing is published",
        examples=["s3://models/triton"])
    alias: str = Field("champion", pattern=r"^[\w-]+$", description="publish the run's version "
                       "only when it holds this alias (the champion: every gate passed and "
                       "registry.promote)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="settings of the Triton deployment: targets, "
                                          "precision, instance_count, max_queue_delay_us",
        examples=[{"instance_count": 2, "max_queue_delay_us": 500}])


class BuilderOptions(Section):
    """Options of each engine backend's builder."""

    tensorrt: BuilderSettings = Field(default_factory=BuilderSettings,
                                      description="TensorRT builder settings")
    onnxruntime: dict[str, Any] = Field(default_factory=dict, max_length=0,
                                        description="none yet: onnxruntime engines are built at "
                                                    "its highest optimization level")

    def for_backend(self, backend: str) -> dict[str, Any]:
        """The options a backend's builder takes: those the spec set, as a mapping."""
        if backend == "tensorrt":
            return self.tensorrt.model_dump(exclude_unset=True)
        return dict(self.onnxruntime)


class PipelineSpec(Section):
    """A trained model to validated inference engines, one per hardware class."""

    name: str = Field(min_length=1, description="the pipeline's name (and the default "
                      "registered model name)", examples=["digits-cnn"])
    model: ModelSpec
    data: DataSpec
    calibration: CalibrationSpec = CalibrationSpec()
    precisions: list[Precision] = Field(["int8", "fp16"], min_length=1, description="engine "
                                        "precisions to build, per target class")
    targets: list[str] = Field(default_factory=list, description="hardware classes of the "
                               "target catalog (default: this machine's)",
                               examples=[["h100", "cpu-avx512-vnni"]])
    store: str = Field("store", description="artifact store: a folder relative to the spec, "
                       "file:// or s3://bucket/prefix", examples=["s3://models/trt-ops"])
    thresholds: dict[Precision, Thresholds] = Field(
        default_factory=dict, description="accuracy gates per precision, over the defaults",
        examples=[{"int8": {"top1_agreement": 0.98, "accuracy_drop": 0.02}}])
    fallback: bool = Field(False, description="when an engine fails its gate, build the next "
                           "precision (fp8, int8, fp16, fp32) on that class")
    builder_options: BuilderOptions = BuilderOptions()
    export: ExportSpec = ExportSpec()
    benchmark: BenchmarkSpec = BenchmarkSpec()
    registry: RegistrySpec = RegistrySpec()
    serving: ServingSpec = ServingSpec()

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if len(set(self.precisions)) != len(self.precisions):
            raise ValueError(f"precisions repeat: {self.precisions}")
        batch = self.model.dims[BATCH]
        too_big = [b for b in self.benchmark.batch_sizes if not batch.min <= b <= batch.max]
        if too_big:
            raise ValueError(f"benchmark batch sizes {too_big} are outside the batch axis "
                             f"{batch.min}..{batch.max}: change model.dims.batch or "
                             "benchmark.batch_sizes")
        dims = self.model.dims
        for name, sizes in self.benchmark.dims.items():
            if name == BATCH or name not in dims:
                raise ValueError(f"benchmark.dims names {name!r}, which is not a dynamic axis "
                                 f"of the inputs other than the batch ({sorted(set(dims) - {BATCH})})")
            out = [s for s in sizes if not dims[name].min <= s <= dims[name].max]
            if out:
                raise ValueError(f"benchmark.dims.{name} sizes {out} are outside the axis's "
                                 f"range {dims[name].min}..{dims[name].max}")
        return self

    def thresholds_for(self, precision: str) -> dict[str, float]:
        given = self.thresholds.get(precision)  # type: ignore[call-overload]
        overrides = given.model_dump(exclude_none=True) if given else {}
        return {**DEFAULT_THRESHOLDS.get(precision, {}), **overrides}

    def profile(self) -> dict[str, dict[str, list[int]]]:
        """min/opt/max shapes per input, from the dynamic axes' ranges."""
        dims = self.model.dims
        return {i.name: {k: i.concrete({n: getattr(d, "optimal" if k == "opt" else k)
                                        for n, d in dims.items()})
                         for k in ("min", "opt", "max")}
                for i in self.model.inputs}
