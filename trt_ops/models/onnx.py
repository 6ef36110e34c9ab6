"""ONNX files: checked on load, and fetched from the store with their external data beside them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

from trt_ops.errors import OnnxModelError
from trt_ops.store import ArtifactStore, blob_cache_dir
from trt_ops.store.manifest import Manifest

if TYPE_CHECKING:
    from trt_ops.engines.contract import TensorSpec


def check_onnx(path: Path) -> Any:
    """Loads and checks an ONNX file; the error says so when it is not ONNX at all."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise OnnxModelError(f"{path.name} is not a valid ONNX model: {str(exc).strip()[:300]}",
                             "export the model again, or pass the path of a real .onnx file") from exc


def external_data_name(name: str, where: str, *, folders: bool = False) -> str:
    """``name`` if it is a plain file name (``folders``: or a path below the model's folder);
    an ONNX's external data is kept beside the model, so a name that climbs out of its folder
    (``../``), or is absolute, is refused before it is joined to any folder."""
    parts = str(name).replace("\\", "/").split("/")
    if (not isinstance(name, str) or "\0" in name or PureWindowsPath(name).drive
            or any(p in ("", ".", "..") for p in parts) or (len(parts) > 1 and not folders)):
        raise OnnxModelError(
            f"{where} names the external data file {name!r}, which is not a plain file name",
            "external data must lie beside the .onnx under a plain name (no folders, no ../); "
            "export the model again, or save it with onnx.save_model(..., location='model.onnx."
            "data')")
    return name


def local_onnx(manifest: Manifest, store: ArtifactStore) -> Path:
    """The manifest's ONNX as a local file, its external data beside it under the right name."""
    return local_model(manifest, store, "onnx", "onnx_data", "model.onnx")


def local_engine(manifest: Manifest, store: ArtifactStore) -> Path:
    """A build manifest's engine as a local file, its external data (if any) beside it."""
    engine = manifest.artifact("engine")
    return local_model(manifest, store, "engine", "engine_data",
                       external_data_name(Path(engine.uri).name, f"the build manifest "
                                          f"{manifest.key}"))


def local_model(manifest: Manifest, store: ArtifactStore, main: str, data: str,
                filename: str) -> Path:
    """``main`` fetched (verified); with a ``data`` artifact, both linked into one folder under
    the names the model records, so that the runtime finds its external weights."""
    model = store.fetch(manifest.artifact(main))
    if data not in manifest.artifacts:
        return model
    art = manifest.artifact(data)
    data_name = manifest.info.get("external_data") if main == "onnx" else Path(art.uri).name
    data_name = external_data_name(data_name, f"the {manifest.stage} manifest {manifest.key}")
    folder = blob_cache_dir() / f"{main}-{manifest.artifact(main).sha256}"
    folder.mkdir(exist_ok=True)
    for src, name in ((model, filename), (store.fetch(art), data_name)):
        dest = folder / name
        if not dest.exists():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            # a copy, not a link: onnx refuses external data with several hard links
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
    return folder / filename


def io_specs(path: Path | str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's inputs and outputs: name, numpy dtype, shape (-1 where dynamic)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    from trt_ops.engines.contract import TensorSpec

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def spec(value: Any) -> TensorSpec:
        t = value.type.tensor_type
        return TensorSpec(name=value.name, dtype=str(tensor_dtype_to_np_dtype(t.elem_type)),
                          shape=[d.dim_value if d.HasField("dim_value") else -1
                                 for d in t.shape.dim])

    return ([spec(v) for v in graph.input if v.name not in initializers],
            [spec(v) for v in graph.output])
