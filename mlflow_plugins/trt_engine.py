"""The ``trt_engine`` MLflow flavor: compiled inference engines, one per hardware class.

This module writes MLflow models with the following flavors:

trt_engine
    Every engine of one model (TensorRT engines per GPU product, onnxruntime engines per CPU
    class) with the facts that decide where it runs, plus the portable FP32 ONNX.
:py:mod:`mlflow.pyfunc`
    Picks the engine that runs on the local GPU and runtime; with none, the portable ONNX on
    onnxruntime when the model allows it, else an error listing what the model offers.

Each engine's record in MLmodel is its engine contract (``trt_ops.engines.contract``), validated
when the model is saved and again when it is loaded. Each engine's sha256 is checked before the
engine is deserialized, so bytes changed in the artifact store are refused instead of executed.
Loading and running live in :mod:`mlflow_plugins.engine_model`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from mlflow import pyfunc
from mlflow.models import Model, ModelInputExample, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.models.utils import _save_example
from mlflow.tracking._model_registry import DEFAULT_AWAIT_MAX_SLEEP_SECONDS
from mlflow.tracking.artifact_utils import _download_artifact_from_uri
from mlflow.utils.docstring_utils import LOG_MODEL_PARAM_DOCS, ParamDocs, format_docstring
from mlflow.utils.environment import (
    _CONDA_ENV_FILE_NAME,
    _CONSTRAINTS_FILE_NAME,
    _PYTHON_ENV_FILE_NAME,
    _REQUIREMENTS_FILE_NAME,
    _process_conda_env,
    _process_pip_requirements,
    _PythonEnv,
    _validate_env_arguments,
)
from mlflow.utils.file_utils import get_total_file_size, write_to
from mlflow.utils.model_utils import (
    _add_code_from_conf_to_system_path,
    _get_flavor_configuration,
    _validate_and_copy_code_paths,
    _validate_and_prepare_target_save_path,
)
from mlflow.utils.requirements_utils import _get_pinned_requirement

from mlflow_plugins.engine_model import EngineModel

FLAVOR_NAME = "trt_engine"
_ENGINES_SUBPATH = "engines"
_PORTABLE_ONNX_SUBPATH = "portable/model.onnx"
_ANY_PRECISION = "any"


# Parameter docs shared by save_model and log_model: MLflow's own, plus this flavor's.
_PARAM_DOCS = ParamDocs({
    **LOG_MODEL_PARAM_DOCS.format(package_name=FLAVOR_NAME),
    "engines": "The engines, each a dict with ``path`` (local engine file), ``metadata`` (the "
               "build stage's engine contract, ``trt_ops.engines.contract``: backend and "
               "version, precision, hardware, I/O tensors, profile, builder settings, sha256) "
               "and optionally ``name``, ``uri`` (where the engine is stored) and ``target`` "
               "(its catalog class). Loading tries them in this order.",
    "onnx_path": "The FP32 ONNX the engines were compiled from. It defines the signature and "
                 "is the portable fallback.",
    "allow_portable_fallback": "When no engine fits the loading machine, run the portable "
                               "ONNX with onnxruntime (True) or refuse to load (False).",
})


def get_default_pip_requirements(engines: Sequence[Any] = ()) -> list[str]:
    """Pinned requirements to load the engines: trt-ops, onnxruntime, and the TensorRT that runs
    the first (preferred) TensorRT engine of ``engines`` (engine contracts): that version, or
    the range its version-compatible plan runs on."""
    from trt_ops import __version__
    from trt_ops.engines.tensorrt.settings import version_requirement

    reqs = [f"trt-ops=={__version__}", _get_pinned_requirement("onnxruntime"),
            _get_pinned_requirement("numpy")]
    tensorrt = [e for e in engines if e.backend == "tensorrt"]
    if tensorrt:
        reqs.append(version_requirement(tensorrt[0].backend_version,
                                        tensorrt[0].builder.version_compatible))
    return reqs


def _engine_entry(engine: dict[str, Any], index: int) -> dict[str, Any]:
    """The MLmodel record of one engine: what decides where it runs, and its digest."""
    from trt_ops.engines.contract import GpuHardware, engine_from_metadata

    contract = engine_from_metadata(engine.get("metadata") or {}, f"engine {index}'s metadata")
    hardware = contract.hardware
    gpu = hardware if isinstance(hardware, GpuHardware) else None
    name = engine.get("name") or f"{engine.get('target') or contract.target or index}-" \
                                 f"{contract.precision}"
    return {
        "name": name,
        "path": f"{_ENGINES_SUBPATH}/{name}/{Path(engine['path']).name}",
        "backend": contract.backend,
        "backend_version": contract.backend_version,
        "precision": contract.precision,
        "target": engine.get("target") or contract.target,
        "gpu_product": gpu.gpu_product if gpu else None,
        "compute_capability": gpu.compute_capability if gpu else None,
        "cpu_isa": None if gpu else getattr(hardware, "cpu_isa", None),
        "profile": {k: v.model_dump() for k, v in contract.profile.items()},
        "sha256": contract.sha256,
        "uri": engine.get("uri"),
        "metadata": contract.model_dump(mode="json"),
        # the fastest engine of its class that passed its gate: what a loader of that class takes
        "recommended": bool(engine.get("recommended")),
    }


def _signature(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> ModelSignature:
    import numpy as np
    from mlflow.types import Schema, TensorSpec

    def schema(specs: list[dict[str, Any]]) -> Schema:
        return Schema([TensorSpec(np.dtype(s["dtype"]), tuple(s["shape"]), s["name"]) for s in specs])

    return ModelSignature(inputs=schema(inputs), outputs=schema(outputs))


@format_docstring(_PARAM_DOCS)
def save_model(
    engines: list[dict[str, Any]],
    path: str,
    onnx_path: str | os.PathLike,
    allow_portable_fallback: bool = True,
    conda_env=None,
    code_paths=None,
    mlflow_model: Model | None = None,
    signature: ModelSignature | None = None,
    input_example: ModelInputExample = None,
    pip_requirements=None,
    extra_pip_requirements=None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """
    Save engines and their portable ONNX as an MLflow model in a local directory.

    Args:
        engines: {{ engines }}
        onnx_path: {{ onnx_path }}
        allow_portable_fallback: {{ allow_portable_fallback }}
        path: Local path where the model is to be saved.
        conda_env: {{ conda_env }}
        code_paths: {{ code_paths }}
        mlflow_model: :py:mod:`mlflow.models.Model` this flavor is being added to.
        signature: Defaults to the ONNX graph's inputs and outputs.
        input_example: {{ input_example }}
        pip_requirements: {{ pip_requirements }}
        extra_pip_requirements: {{ extra_pip_requirements }}
        metadata: {{ metadata }}
    """
    from trt_ops import __version__
    from trt_ops.engines.contract import engine_from_metadata
    from trt_ops.errors import IntegrityError, SpecError
    from trt_ops.models.onnx import io_specs
    from trt_ops.store.digest import sha256_file

    if not engines:
        raise SpecError("no engines to save", "pass at least one engine built by the build stage")
    entries = [_engine_entry(e, i) for i, e in enumerate(engines)]
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise SpecError(f"engine names repeat: {names}", "give each engine a distinct name")
    _validate_env_arguments(conda_env, pip_requirements, extra_pip_requirements)
    path = os.path.abspath(path)
    _validate_and_prepare_target_save_path(path)
    code_dir_subpath = _validate_and_copy_code_paths(code_paths, path)

    # copy, then check each copy against its recorded digest: a model is never saved with bytes
    # other than the ones that were validated
    for engine, entry in zip(engines, entries):
        dest = Path(path, entry["path"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(engine["path"], dest)
        if (found := sha256_file(dest)) != entry["sha256"]:
            shutil.rmtree(path, ignore_errors=True)
            raise IntegrityError(f"engine {entry['name']} ({engine['path']}) has sha256 {found}, "
                                 f"its metadata records {entry['sha256']}",
                                 "pass the engine file that the build stage produced")
        _copy_external_data(Path(engine["path"]), dest)
    portable = Path(path, _PORTABLE_ONNX_SUBPATH)
    portable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, portable)
    _copy_external_data(Path(onnx_path), portable)
    inputs, outputs = [[t.model_dump() for t in specs] for specs in io_specs(portable)]

    if mlflow_model is None:
        mlflow_model = Model()
    mlflow_model.signature = signature or _signature(inputs, outputs)
    if input_example is not None:
        _save_example(mlflow_model, input_example, path)
    if metadata is not None:
        mlflow_model.metadata = metadata
    # declared here so that load_model(..., model_config={"precision": "fp16"}) may override it
    pyfunc.add_to_model(mlflow_model, loader_module=__name__, conda_env=_CONDA_ENV_FILE_NAME,
                        python_env=_PYTHON_ENV_FILE_NAME, code=code_dir_subpath,
                        model_config={"precision": _ANY_PRECISION})
    mlflow_model.add_flavor(
        FLAVOR_NAME,
        trt_ops_version=__version__,
        engines=entries,
        portable_onnx={"path": _PORTABLE_ONNX_SUBPATH, "sha256": sha256_file(portable)},
        allow_portable_fallback=bool(allow_portable_fallback),
        inputs=inputs,
        outputs=outputs,
        code=code_dir_subpath,
    )
    if size := get_total_file_size(path):
        mlflow_model.model_size_bytes = size
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))

    if conda_env is None:
        default_reqs = None if pip_requirements else get_default_pip_requirements(
            [engine_from_metadata(e["metadata"]) for e in entries])
        conda_env, pip_requirements, pip_constraints = _process_pip_requirements(
            default_reqs, pip_requirements, extra_pip_requirements)
    else:
        conda_env, pip_requirements, pip_constraints = _process_conda_env(conda_env)
    with open(os.path.join(path, _CONDA_ENV_FILE_NAME), "w") as f:
        yaml.safe_dump(conda_env, stream=f, default_flow_style=False)
    if pip_constraints:
        write_to(os.path.join(path, _CONSTRAINTS_FILE_NAME), "\n".join(pip_constraints))
    write_to(os.path.join(path, _REQUIREMENTS_FILE_NAME), "\n".join(pip_requirements))
    _PythonEnv.current().to_yaml(os.path.join(path, _PYTHON_ENV_FILE_NAME))



def _copy_external_data(src: Path, dest: Path) -> None:
    """An ONNX model over 2 GB keeps its weights in files beside it: they go where it goes."""
    if src.suffix != ".onnx":
        return
    from trt_ops.models.onnx import external_data_name
    from trt_ops.models.onnx_source import external_files

    for location in external_files(src):
        name = external_data_name(location, f"ONNX model {src.name}", folders=True)
        (dest.parent / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src.parent / name, dest.parent / name)


@format_docstring(_PARAM_DOCS)
def log_model(
    engines: list[dict[str, Any]],
    onnx_path: str | os.PathLike,
    name: str | None = None,
    allow_portable_fallback: bool = True,
    conda_env=None,
    code_paths=None,
    registered_model_name: str | None = None,
    signature: ModelSignature | None = None,
    input_example: ModelInputExample = None,
    await_registration_for=DEFAULT_AWAIT_MAX_SLEEP_SECONDS,
    pip_requirements=None,
    extra_pip_requirements=None,
    metadata: dict[str, Any] | None = None,
    run_id: str | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    step: int = 0,
):
    """
    Log engines as an MLflow model of the given (or the active) run.

    Args:
        engines: {{ engines }}
        onnx_path: {{ onnx_path }}
        allow_portable_fallback: {{ allow_portable_fallback }}
        name: {{ name }}
        conda_env: {{ conda_env }}
        code_paths: {{ code_paths }}
        registered_model_name: If given, create a model version under this registered model.
        signature: Defaults to the ONNX graph's inputs and outputs.
        input_example: {{ input_example }}
        await_registration_for: Seconds to wait for the model version to become ``READY``.
        pip_requirements: {{ pip_requirements }}
        extra_pip_requirements: {{ extra_pip_requirements }}
        metadata: {{ metadata }}
        run_id: The run to log to (default: the active run, or a new one).
        params: {{ params }}
        tags: {{ tags }}
        step: {{ step }}

    Returns:
        A :py:class:`ModelInfo <mlflow.models.model.ModelInfo>` of the logged model.
    """
    return Model.log(
        artifact_path=None, name=name, flavor=sys.modules[__name__], engines=engines,
        onnx_path=onnx_path,
        allow_portable_fallback=allow_portable_fallback, conda_env=conda_env,
        code_paths=code_paths, registered_model_name=registered_model_name, signature=signature,
        input_example=input_example, await_registration_for=await_registration_for,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
        metadata=metadata, run_id=run_id, params=params, tags=tags, step=step,
    )



def load_model(model_uri: str, dst_path: str | None = None, precision: str | None = None) -> EngineModel:
    """
    Load the engine of an MLflow ``trt_engine`` model that fits this machine.

    Args:
        model_uri: The location, in URI format, of the MLflow model, for example
            ``models:/<name>@champion``, ``models:/<name>/<version>`` or ``runs:/<run_id>/<name>``.
        dst_path: The local directory to download the model artifacts into.
        precision: Only consider engines of this precision (e.g. ``"fp16"``).

    Returns:
        An :py:class:`EngineModel` with ``predict(dict_of_arrays)``.
    """
    local_path = _download_artifact_from_uri(artifact_uri=model_uri, output_path=dst_path)
    conf = _get_flavor_configuration(model_path=local_path, flavor_name=FLAVOR_NAME)
    _add_code_from_conf_to_system_path(local_path, conf)
    return EngineModel(local_path, conf, precision)


class _EngineWrapper:
    def __init__(self, model: EngineModel) -> None:
        self.model = model

    def get_raw_model(self) -> EngineModel:
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.model.predict(data, params)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> _EngineWrapper:
    """Called by ``mlflow.pyfunc.load_model``; ``path`` is the model's root directory.

    ``model_config={"precision": "fp16"}`` restricts the choice to engines of one precision.
    """
    conf = _get_flavor_configuration(model_path=path, flavor_name=FLAVOR_NAME)
    precision = (model_config or {}).get("precision", _ANY_PRECISION)
    return _EngineWrapper(EngineModel(path, conf, None if precision == _ANY_PRECISION else precision))


__all__ = ["FLAVOR_NAME", "EngineModel", "get_default_pip_requirements", "load_model",
           "log_model", "save_model"]
