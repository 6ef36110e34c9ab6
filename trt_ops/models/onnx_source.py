"""An ONNX model as the pipeline's source: fetched, checked against the spec, and stored.

The ONNX itself is the FP32 reference (run on onnxruntime), so export becomes "check and store":
it must parse, its external data must be complete, its inputs must match the spec's (names,
dtypes, fixed sizes, and a symbolic axis wherever the spec declares a dynamic one), the outputs
the spec names must exist, and onnxruntime must run it at the smallest and largest shapes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trt_ops.errors import OnnxModelError

ONNX_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool", 2: "uint8",
               16: "bfloat16", 11: "float64", 3: "int8"}


def fetch(uri: str) -> Path:
    """The ONNX file at ``uri`` on local disk, its external data files beside it: a path,
    ``file://`` or ``s3://`` URI, or a registered ONNX model (``models:/name/version|@alias``)."""
    from trt_ops.data.sources import local_data_path

    if str(uri).startswith("models:/"):
        from trt_ops.models.registered import fetch_registered_onnx

        return fetch_registered_onnx(str(uri))

    path = local_data_path(uri)
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {uri} does not exist",
                             "check model.onnx in the spec (relative paths are relative to it)")
    if urlparse(str(uri)).scheme == "s3":
        prefix = str(uri).rsplit("/", 1)[0]
        from trt_ops.models.onnx import external_data_name

        for location in external_files(path):
            dest = path.parent / external_data_name(location, f"ONNX model {uri}",
                                                         folders=True)
            if not dest.is_file():  # fetched once, beside the model, under its own name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(local_data_path(f"{prefix}/{location}"), dest)
    return path


def external_files(path: Path) -> list[str]:
    """The external data files the model names (relative to its folder)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = parse(path)
    return sorted({next(e.value for e in t.external_data if e.key == "location")
                   for t in _get_all_tensors(model) if uses_external_data(t)})


def parse(path: Path) -> Any:
    """The ModelProto without its external data; a clear error for a file that is not ONNX."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OnnxModelError(f"{path.name} is not an ONNX model, or it is truncated: {exc}",
                             "pass the complete .onnx file (re-export or re-download it)") from exc
    if not model.graph.node or not model.opset_import:
        raise OnnxModelError(f"{path.name} is not an ONNX model: it has no graph nodes or opset",
                             "pass the .onnx file the model was exported to")
    return model


def check_external_data(path: Path, model: Any) -> None:
    """Every external tensor's bytes are there: a truncated or missing data file is refused."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    for t in _get_all_tensors(model):
        if not uses_external_data(t):
            continue
        info = {e.key: e.value for e in t.external_data}
        data = path.parent / info["location"]
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if not data.is_file():
            raise OnnxModelError(f"{path.name} keeps tensor {t.name!r} in {info['location']}, "
                                 "which is missing",
                                 "put the external data file beside the .onnx (same folder or "
                                 "S3 prefix)")
        if data.stat().st_size < end:
            raise OnnxModelError(f"external data {info['location']} is truncated: tensor "
                                 f"{t.name!r} ends at byte {end}, the file has "
                                 f"{data.stat().st_size}", "copy the complete data file again")


def check_signature(model: Any, inputs: Sequence[Any], outputs: Sequence[str],
                    dims: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Refuses inputs that do not match the spec; returns the graph's output names."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    found = {i.name: i for i in graph.input if i.name not in initializers}
    names = [i.name for i in inputs]
    if set(found) != set(names):
        raise OnnxModelError(f"the ONNX model's inputs are {sorted(found)}, the spec's are "
                             f"{sorted(names)}", "name model.inputs as the ONNX graph does")
    fix = "make model.inputs match the ONNX graph (dtype, axes), or export it again"
    for spec in inputs:
        t = found[spec.name].type.tensor_type
        dtype = ONNX_DTYPES.get(t.elem_type, str(t.elem_type))
        if dtype != spec.dtype:
            raise OnnxModelError(f"input {spec.name!r} is {dtype} in the ONNX model, "
                                 f"{spec.dtype} in the spec", fix)
        axes = list(t.shape.dim)
        if len(axes) != len(spec.shape):
            raise OnnxModelError(f"input {spec.name!r} has {len(axes)} axes in the ONNX model, "
                                 f"{len(spec.shape)} in the spec", fix)
        for k, (axis, want) in enumerate(zip(axes, spec.shape)):
            fixed = axis.dim_value if axis.HasField("dim_value") else None
            if isinstance(want, int) and fixed is not None and fixed != want:
                raise OnnxModelError(f"input {spec.name!r} axis {k} is {fixed} in the ONNX "
                                     f"model, {want} in the spec", fix)
            if isinstance(want, str) and fixed is not None:
                r = dims.get(want, {})
                if (r.get("min"), r.get("max")) != (fixed, fixed):
                    raise OnnxModelError(
                        f"input {spec.name!r} axis {k} is fixed at {fixed} in the ONNX model, "
                        f"but the spec makes it the dynamic axis {want!r}",
                        "export the ONNX with that axis dynamic, or fix the axis in the spec")
    produced = [o.name for o in graph.output]
    missing = [o for o in outputs if o not in produced]
    if missing:
        raise OnnxModelError(f"the ONNX model does not produce outputs {missing}; its outputs "
                             f"are {produced}", "name only outputs the model has in model.outputs")
    return [*outputs, *(o for o in produced if o not in outputs)]


def digest(path: Path) -> str:
    """What identifies the model: its file and its external data files."""
    from trt_ops.store.digest import sha256_file

    h = hashlib.sha256(sha256_file(path).encode())
    for location in external_files(path):
        h.update(f"{location}:{sha256_file(path.parent / location)}".encode())
    return h.hexdigest()


def normalized_copy(path: Path, model: Any, folder: Path) -> tuple[Path, str | None]:
    """The model in ``folder`` as ``model.onnx``, its external data (if any) in one file."""
    import shutil

    import onnx

    out = folder / "model.onnx"
    if not external_files(path):
        shutil.copyfile(path, out)
        return out, None
    full = onnx.load(str(path), load_external_data=True)
    data = "model.onnx.data"
    onnx.save_model(full, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data, size_threshold=1024)
    return out, data
