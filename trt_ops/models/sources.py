"""Loading the source PyTorch model named by a spec: a factory, a state_dict, a .pt2 program."""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.errors import ModelSourceError
from trt_ops.store.digest import sha256_file

if TYPE_CHECKING:
    import torch


def _import_factory(ref: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ModelSourceError(f"model factory {ref!r} is not of the form module:function",
                               "write it like my_package.models:build_model")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is the user's to fix
        raise ModelSourceError(
            f"cannot import module {module_name!r} of model factory {ref!r}: "
            f"{type(exc).__name__}: {exc}",
            "install the package that defines the model on this worker, or fix the module path",
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ModelSourceError(f"module {module_name!r} has no attribute {attr!r}",
                               f"check the function name in {ref!r}") from None


def source_digest(source: dict[str, Any]) -> str:
    """What identifies the source's weights: the file digest, or the factory call itself."""
    if source.get("onnx"):
        from trt_ops.models import onnx_source

        return "onnx:" + onnx_source.digest(onnx_source.fetch(source["onnx"]))
    if source.get("program"):
        return "pt2:" + sha256_file(local_file(source["program"]))
    if source.get("state_dict"):
        return f"{source['factory']}|sd:" + sha256_file(local_file(source["state_dict"]))
    if source.get("registered"):
        # the alias resolved to its version: a moved @alias is a different source
        from trt_ops.models.registered import resolve

        return "registered:" + resolve(str(source["registered"]))
    return f"{source['factory']}|kwargs:{sorted((source.get('kwargs') or {}).items())}"


def local_file(uri: str) -> Path:
    """The model file at a path, ``file://`` or ``s3://`` URI on this worker's disk (objects
    are fetched once into the download cache), so a worker needs no copy of its own."""
    from trt_ops.data.sources import local_data_path
    from trt_ops.errors import DataError

    try:
        p = local_data_path(uri)
    except DataError:
        p = None
    if p is None or not p.is_file():
        raise ModelSourceError(f"model file {uri} does not exist",
                               "check the path or URI in the spec (relative paths are relative "
                               "to it; s3:// objects must be uploaded first)")
    return p


def load_program(path: Path, what: str | None = None) -> torch.nn.Module:
    """The module of a torch.export program (.pt2), refused unread if it holds a pickle.

    ``torch.export.load`` unpickles some records of the archive with ``weights_only=False``;
    MLflow's check admits only JSON, raw tensors and what torch's weights-only unpickler takes.
    """
    import torch
    from mlflow.exceptions import MlflowException
    from mlflow.pytorch import _validate_pt2_archive_is_pickle_free

    what = what or str(path)
    how = "save it with torch.export.save(torch.export.export(model, args, dynamic_shapes=...), path)"
    try:
        with zipfile.ZipFile(path) as archive:  # a .pt2 is a zip archive; CRCs checked
            bad = archive.testzip()
        if bad:
            raise zipfile.BadZipFile(f"record {bad} is corrupt")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelSourceError(f"{what} is not a torch.export program (.pt2), it is truncated "
                               f"or corrupt: {type(exc).__name__}: {str(exc)[:200]}", how) from exc
    try:
        _validate_pt2_archive_is_pickle_free(str(path))
    except MlflowException as exc:
        raise ModelSourceError(f"{what} is not a plain torch.export program: "
                               f"{exc.message.splitlines()[0][:300]}",
                               f"{how}; trt-ops does not unpickle what a program carries") from exc
    except Exception as exc:  # (not a zip, truncated: the file's fault)
        raise ModelSourceError(f"{what} is not a torch.export program (.pt2): "
                               f"{type(exc).__name__}: {str(exc)[:200]}", how) from exc
    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:
        raise ModelSourceError(f"{what} is not a loadable torch.export program: "
                               f"{type(exc).__name__}: {str(exc)[:200]}", how) from exc


def load_model(source: dict[str, Any]) -> torch.nn.Module:
    """The source model in eval mode, on CPU."""
    import torch

    if source.get("onnx"):
        raise ModelSourceError("the source is an ONNX model: there is no PyTorch model to load",
                               "use the exported ONNX (the export stage's manifest) instead")
    if source.get("registered"):
        from trt_ops.models.registered import load_registered_model

        return load_registered_model(source["registered"])  # a program: no train mode
    if source.get("program"):
        return load_program(local_file(source["program"]))

    factory = _import_factory(source["factory"])
    try:
        model = factory(**(source.get("kwargs") or {}))
    except Exception as exc:
        raise ModelSourceError(f"model factory {source['factory']} failed: {type(exc).__name__}: {exc}",
                               "call it by hand to debug; its kwargs come from model.kwargs") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelSourceError(f"model factory {source['factory']} returned {type(model).__name__}",
                               "the factory must return a torch.nn.Module")
    if source.get("state_dict"):
        path = local_file(source["state_dict"])
        try:
            # mapped, not read: the model's own weights are then replaced by these (assign)
            # rather than overwritten, so a large model is not held twice while loading
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # a file in torch's legacy format cannot be mapped
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelSourceError(
                f"cannot load state_dict {path} with weights_only=True: {exc}",
                "save only tensors: torch.save(model.state_dict(), path)") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]  # a common checkpoint layout
        try:
            model.load_state_dict(state, strict=True, assign=_same_dtypes(model, state))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise ModelSourceError(
                f"state_dict {path} does not fit the model built by {source['factory']}: "
                + " ".join(line.strip() for line in first[:4]),
                "use the state_dict saved from this architecture, or pass model.kwargs that "
                "build the matching architecture",
            ) from exc
    return model.eval()


def _same_dtypes(model: torch.nn.Module, state: Any) -> bool:
    """Whether every tensor of ``state`` has the dtype of the model's tensor it replaces: only
    then can the model take them as they are (a half-precision checkpoint is cast instead)."""
    own = model.state_dict()
    return isinstance(state, dict) and all(
        k not in own or getattr(v, "dtype", None) == own[k].dtype for k, v in state.items())
