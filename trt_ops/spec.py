"""The pipeline spec: one YAML file names the model, data, precisions, targets and thresholds.

Example (``trt-ops example digits`` writes a complete one)::

    name: digits-cnn
    model:
      factory: trt_ops.examples.digits:build_model   # or program: model.pt2
      state_dict: model.pt                           # optional, loaded with weights_only=True
      inputs: [{name: image, shape: [1, 1, 8, 8], dtype: float32}]
      task: classification                           # classification | embedding | regression
    data: {calibration: calib.npz, validation: val.npz, calibration_samples: 512}
    precisions: [int8, fp16]
    targets: [cpu-avx512]                            # catalog classes; default: this machine's
    store: store                                     # directory, file:// or s3:// URI
    thresholds: {int8: {top1_agreement: 0.98}}
    benchmark: {batch_sizes: [1, 32], iterations: 50, warmup: 10}

Relative paths are relative to the spec file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from trt_ops.engines.base import check_precision_name
from trt_ops.errors import SpecError

TASKS = ("classification", "embedding", "regression")
DTYPES = ("float32", "float16", "int64", "int32", "bool", "uint8")

# Accuracy thresholds per precision, used where the spec gives none. Errors are on the
# model's raw outputs (logits for a classifier).
# Absolute errors depend on the model's output scale, so they have no default; accuracy_drop
# applies only where the validation set has labels.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"top1_agreement": 0.999, "min_cosine": 0.9999, "accuracy_drop": 0.001},
    "fp16": {"top1_agreement": 0.99, "min_cosine": 0.999, "accuracy_drop": 0.005},
    "bf16": {"top1_agreement": 0.98, "min_cosine": 0.995, "accuracy_drop": 0.01},
    "int8": {"top1_agreement": 0.98, "min_cosine": 0.98, "accuracy_drop": 0.02},
    "fp8": {"top1_agreement": 0.97, "min_cosine": 0.97, "accuracy_drop": 0.03},
}


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input. ``shape`` is an example shape; its first axis is the dynamic batch."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    inputs: tuple[InputSpec, ...]
    factory: str | None = None
    state_dict: str | None = None
    program: str | None = None
    registered: str | None = None  # models:/name/version or models:/name@alias
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    task: str = "classification"

    def source(self) -> dict[str, Any]:
        """The JSON form recorded in manifests and used to load the model again."""
        d: dict[str, Any] = {k: getattr(self, k) for k in ("factory", "state_dict", "program",
                                                             "registered") if getattr(self, k)}
        if self.kwargs:
            d["kwargs"] = dict(self.kwargs)
        return d


@dataclasses.dataclass(frozen=True)
class DataSpec:
    calibration: str
    validation: str
    calibration_samples: int = 512
    calibration_method: str = "entropy"
    # data checks (trt_ops.data_checks): allowed value range per input, e.g. {image: [0, 1]}
    # (default: validation must stay near the calibration set's range), the fewest samples
    # each set needs, and the number of classes the validation labels must cover
    ranges: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    min_samples: int = 100
    classes: int | None = None


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    batch_sizes: tuple[int, ...] = (1, 32)
    iterations: int = 50
    warmup: int = 10
    streams: int = 1


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    name: str
    model: ModelSpec
    data: DataSpec
    store: str
    precisions: tuple[str, ...] = ("int8", "fp16")
    targets: tuple[str, ...] = ()
    thresholds: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    benchmark: BenchmarkSpec = BenchmarkSpec()
    max_batch: int = 32
    fallback: bool = False
    promote: bool = False
    builder_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    export_tolerance: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"atol": 1e-4, "rtol": 1e-3})
    registry: dict[str, Any] = dataclasses.field(default_factory=dict)

    def thresholds_for(self, precision: str) -> dict[str, float]:
        return {**DEFAULT_THRESHOLDS.get(precision, {}), **self.thresholds.get(precision, {})}

    def profile(self) -> dict[str, dict[str, list[int]]]:
        """min/opt/max shapes per input: batch 1 to ``max_batch``, optimized for the largest."""
        return {
            i.name: {"min": [1, *i.sample_shape], "opt": [self.max_batch, *i.sample_shape],
                     "max": [self.max_batch, *i.sample_shape]}
            for i in self.model.inputs
        }


def _require(d: dict[str, Any], key: str, where: str, example: str) -> Any:
    if key not in d or d[key] in (None, ""):
        raise SpecError(f"{where} has no {key!r}", f"add it, e.g. {example}")
    return d[key]


def _check_keys(d: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SpecError(f"{where} has unknown keys {unknown}", f"allowed: {sorted(allowed)}")


def _resolve(path: str | None, base: Path) -> str | None:
    """Paths relative to the spec file; URIs (s3://, file://, models:/) stay as they are."""
    if path is None:
        return None
    scheme = urlparse(str(path)).scheme
    if scheme and len(scheme) > 1:
        return str(path)
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _inputs(raw: Any) -> tuple[InputSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("model.inputs must be a non-empty list",
                        "e.g. inputs: [{name: image, shape: [1, 3, 224, 224], dtype: float32}]")
    out = []
    for i, item in enumerate(raw):
        where = f"model.inputs[{i}]"
        _check_keys(item, {"name", "shape", "dtype"}, where)
        shape = _require(item, "shape", where, "shape: [1, 3, 224, 224]")
        if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
            raise SpecError(f"{where}.shape must be a list of positive ints, got {shape!r}",
                            "give an example shape with the batch axis first, e.g. [1, 3, 224, 224]")
        dtype = item.get("dtype", "float32")
        if dtype not in DTYPES:
            raise SpecError(f"{where}.dtype {dtype!r} is not supported", f"use one of {DTYPES}")
        out.append(InputSpec(_require(item, "name", where, "name: image"), tuple(shape), dtype))
    return tuple(out)


def _ranges(raw: Any) -> dict[str, tuple[float, float]]:
    out = {}
    for name, bounds in (raw or {}).items():
        if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2
                and all(isinstance(b, (int, float)) for b in bounds) and bounds[0] <= bounds[1]):
            raise SpecError(f"data.ranges.{name} must be [low, high], got {bounds!r}",
                            f"e.g. ranges: {{{name}: [0.0, 1.0]}}")
        out[str(name)] = (float(bounds[0]), float(bounds[1]))
    return out


def parse_spec(doc: dict[str, Any], base_dir: str | Path = ".") -> PipelineSpec:
    base = Path(base_dir).resolve()
    if not isinstance(doc, dict):
        raise SpecError("the spec must be a YAML mapping", "see `trt-ops run --help` for an example")
    fields = {f.name for f in dataclasses.fields(PipelineSpec)}
    _check_keys(doc, fields, "the spec")

    m = _require(doc, "model", "the spec", "model: {factory: pkg.module:build, inputs: [...]}")
    _check_keys(m, {f.name for f in dataclasses.fields(ModelSpec)}, "model")
    sources = [k for k in ("factory", "program", "registered") if m.get(k)]
    if len(sources) != 1:
        raise SpecError(f"model must name exactly one source, got {sources or 'none'}",
                        "give model.factory (module:function), model.program (a torch.export "
                        ".pt2 file) or model.registered (models:/name/version)")
    task = m.get("task", "classification")
    if task not in TASKS:
        raise SpecError(f"model.task {task!r} is unknown", f"use one of {TASKS}")
    model = ModelSpec(
        inputs=_inputs(m.get("inputs")), factory=m.get("factory"),
        state_dict=_resolve(m.get("state_dict"), base), program=_resolve(m.get("program"), base),
        registered=m.get("registered"), kwargs=dict(m.get("kwargs") or {}),
        outputs=tuple(m.get("outputs") or ()), task=task,
    )

    d = _require(doc, "data", "the spec", "data: {calibration: calib.npz, validation: val.npz}")
    _check_keys(d, {f.name for f in dataclasses.fields(DataSpec)}, "data")
    data = DataSpec(
        calibration=str(_resolve(_require(d, "calibration", "data", "calibration: calib.npz"), base)),
        validation=str(_resolve(_require(d, "validation", "data", "validation: val.npz"), base)),
        calibration_samples=int(d.get("calibration_samples", 512)),
        calibration_method=str(d.get("calibration_method", "entropy")),
        ranges=_ranges(d.get("ranges")),
        min_samples=int(d.get("min_samples", 100)),
        classes=None if d.get("classes") is None else int(d["classes"]),
    )
    if data.calibration_samples < 1:
        raise SpecError("data.calibration_samples must be >= 1", "e.g. calibration_samples: 512")

    precisions = tuple(doc.get("precisions") or ("int8", "fp16"))
    for p in precisions:
        check_precision_name(p)
    bench = doc.get("benchmark") or {}
    _check_keys(bench, {f.name for f in dataclasses.fields(BenchmarkSpec)}, "benchmark")
    return PipelineSpec(
        name=str(_require(doc, "name", "the spec", "name: my-model")),
        model=model, data=data,
        store=str(_resolve(doc.get("store") or "store", base)),
        precisions=precisions,
        targets=tuple(doc.get("targets") or ()),
        thresholds={str(k): dict(v) for k, v in (doc.get("thresholds") or {}).items()},
        benchmark=BenchmarkSpec(**{k: tuple(v) if k == "batch_sizes" else v for k, v in bench.items()}),
        max_batch=int(doc.get("max_batch", 32)),
        fallback=bool(doc.get("fallback", False)),
        promote=bool(doc.get("promote", False)),
        builder_options=dict(doc.get("builder_options") or {}),
        export_tolerance={"atol": 1e-4, "rtol": 1e-3, **(doc.get("export_tolerance") or {})},
        registry=dict(doc.get("registry") or {}),
    )


def load_spec(path: str | Path) -> PipelineSpec:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {p} does not exist", "pass the path of a pipeline YAML") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {p} is not valid YAML: {exc}", "fix the YAML syntax") from exc
    return parse_spec(doc, p.parent)
