"""``config.pbtxt`` built as Triton's own ``ModelConfig`` protobuf (``tritonclient``'s
``model_config_pb2``) and written with ``google.protobuf.text_format``.

Shapes come from the engine's contract: an input whose first axis is dynamic and whose shape
profile starts at batch 1 is batched by Triton (``max_batch_size`` = the profile's largest
batch, ``dims`` without the batch axis); an axis the profile fixes (min = max) gets that size,
any other dynamic axis -1.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from trt_ops.errors import SpecError

if TYPE_CHECKING:
    from mlflow_plugins.triton.engines import ServedEngine, Tensor
    from mlflow_plugins.triton.layout import TritonModel

CONFIG_FILE = "config.pbtxt"

# numpy dtype name -> Triton DataType
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "int8": "TYPE_INT8",
    "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16", "object": "TYPE_STRING", "str": "TYPE_STRING",
}
# onnxruntime graph optimization level the engine is loaded at -> Triton's optimization.graph.level
# (the onnxruntime backend maps -1 to basic, 1 to extended and 2 to none; unset means all)
ORT_GRAPH_LEVELS = {"ORT_ENABLE_BASIC": -1, "ORT_ENABLE_EXTENDED": 1, "ORT_DISABLE_ALL": 2}


@dataclasses.dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str        # a Triton DataType name, e.g. TYPE_FP32
    dims: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What a Triton model declares about its tensors; equal for engines that can share a model."""

    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """The deployment's tunables (from ``--config``)."""

    max_queue_delay_us: int = 100
    instance_count: int = 1


def _triton_dtype(t: Tensor) -> str:
    try:
        return TRITON_DTYPES[t.dtype]
    except KeyError:
        raise SpecError(f"tensor {t.name!r} has dtype {t.dtype}, which Triton has no type for",
                        f"export the model with one of {sorted(TRITON_DTYPES)}") from None


def shapes(engine: ServedEngine, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...]) -> Shapes:
    """The Triton shapes of ``engine``: batching and dims from its shape profile."""
    profile = engine.profile
    batched = (bool(inputs) and all(t.shape and t.shape[0] == -1 and t.name in profile
                                    for t in inputs)
               and all(o.shape and o.shape[0] == -1 for o in outputs))
    if batched:
        low = {t.name: profile[t.name]["min"][0] for t in inputs}
        if any(b != 1 for b in low.values()):
            raise SpecError(f"engine {engine.name}'s shape profile starts at batch {low}; Triton "
                            "forms batches of any size from 1",
                            "build the engine with a profile whose min batch is 1")
        max_batch = min(int(profile[t.name]["max"][0]) for t in inputs)

    def input_dims(t: Tensor) -> tuple[int, ...]:
        p = profile.get(t.name)
        dims = [p["min"][k] if p and p["min"][k] == p["max"][k] else d
                for k, d in enumerate(t.shape)]
        return tuple(int(d) for d in (dims[1:] if batched else dims))

    def output_dims(t: Tensor) -> tuple[int, ...]:
        return tuple(t.shape[1:] if batched else t.shape)

    return Shapes(
        max_batch_size=max_batch if batched else 0,
        inputs=tuple(TensorConfig(t.name, _triton_dtype(t), input_dims(t)) for t in inputs),
        outputs=tuple(TensorConfig(t.name, _triton_dtype(t), output_dims(t)) for t in outputs))


def model_config(name: str, version: int, model: TritonModel, shape: Shapes,
                 options: ServingOptions) -> Any:
    """The ``inference.ModelConfig`` of one Triton model serving ``model``'s engines."""
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = mc.ModelConfig(name=name, max_batch_size=shape.max_batch_size)
    if model.backend == "tensorrt":
        cfg.platform = "tensorrt_plan"
        # no default_model_filename: a GPU of another compute capability fails to load the
        # model (no model.plan) instead of running a plan built for a different GPU
        for engine in model.engines:
            cfg.cc_model_filenames[engine.compute_capability] = model.filename(engine)
    else:
        (engine,) = model.engines
        cfg.backend = "onnxruntime"
        cfg.default_model_filename = model.filename(engine)
        level = ORT_GRAPH_LEVELS.get(engine.load_graph_optimization or "")
        if level is not None:  # the engine file is already optimized for its CPU class
            cfg.optimization.graph.level = level
    for t in shape.inputs:
        cfg.input.add(name=t.name, data_type=mc.DataType.Value(t.data_type), dims=t.dims)
    for t in shape.outputs:
        cfg.output.add(name=t.name, data_type=mc.DataType.Value(t.data_type), dims=t.dims)
    if shape.max_batch_size > 0:
        cfg.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    kind = mc.ModelInstanceGroup.KIND_GPU if model.on_gpu else mc.ModelInstanceGroup.KIND_CPU
    cfg.instance_group.add(kind=kind, count=options.instance_count)
    # serve exactly the registered version, whatever else the folder holds
    cfg.version_policy.specific.versions.append(version)
    return cfg


def to_text(cfg: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def parse(text: str) -> Any:
    """``config.pbtxt`` text as a ``ModelConfig``; an unknown field or bad value raises
    ``google.protobuf.text_format.ParseError``, as it would in Triton."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    return text_format.Parse(text, mc.ModelConfig())
