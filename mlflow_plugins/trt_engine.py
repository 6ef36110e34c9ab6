"""The ``trt_engine`` MLflow flavor: compiled inference engines, one per hardware class.

This module writes MLflow models with the following flavors:

trt_engine
    Every engine of one model (TensorRT engines per GPU product, onnxruntime engines per CPU
    class) with the facts that decide where it runs, plus the portable FP32 ONNX.
:py:mod:`mlflow.pyfunc`
    Picks the engine that runs on the local GPU and runtime; with none, the portable ONNX on
    onnxruntime when the model allows it, else an error listing what the model offers.

Each engine's sha256 is recorded in MLmodel and checked before the engine is deserialized, so
bytes changed in the artifact store are refused instead of executed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
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

FLAVOR_NAME = "trt_engine"
_ENGINES_SUBPATH = "engines"
_PORTABLE_ONNX_SUBPATH = "portable/model.onnx"
_PORTABLE_PROVIDERS = ["CPUExecutionProvider"]
_ANY_PRECISION = "any"

_log = logging.getLogger(__name__)

# Parameter docs shared by save_model and log_model: MLflow's own, plus this flavor's.
_PARAM_DOCS = ParamDocs({
    **LOG_MODEL_PARAM_DOCS.format(package_name=FLAVOR_NAME),
    "engines": "The engines, each a dict with ``path`` (local engine file), ``metadata`` (the "
               "build stage's engine metadata: backend, backend_version, precision, hardware, "
               "profile, sha256) and optionally ``name``, ``uri`` (where the engine is stored) "
               "and ``target`` (its catalog class). Loading tries them in this order.",
    "onnx_path": "The FP32 ONNX the engines were compiled from. It defines the signature and "
                 "is the portable fallback.",
    "allow_portable_fallback": "When no engine fits the loading machine, run the portable "
                               "ONNX with onnxruntime (True) or refuse to load (False).",
})


def get_default_pip_requirements(backends: tuple[str, ...] = ("onnxruntime",)) -> list[str]:
    """Pinned requirements to load the engines: trt-ops, onnxruntime, and each engine runtime."""
    from trt_ops import __version__

    reqs = [f"trt-ops=={__version__}", _get_pinned_requirement("onnxruntime"),
            _get_pinned_requirement("numpy")]
    if "tensorrt" in backends:
        reqs.append("tensorrt")  # pinned per engine in MLmodel; the worker's TensorRT must match
    return reqs


def _engine_entry(engine: dict[str, Any], index: int) -> dict[str, Any]:
    """The MLmodel record of one engine: what decides where it runs, and its digest."""
    from trt_ops.errors import SpecError

    meta = dict(engine.get("metadata") or {})
    missing = [k for k in ("backend", "backend_version", "precision", "sha256") if not meta.get(k)]
    if missing:
        raise SpecError(f"engine {index} metadata lacks {missing}",
                        "pass the build stage's info.metadata as the engine's metadata")
    hardware = meta.get("hardware") or {}
    name = engine.get("name") or f"{engine.get('target') or index}-{meta['precision']}"
    return {
        "name": name,
        "path": f"{_ENGINES_SUBPATH}/{name}/{Path(engine['path']).name}",
        "backend": meta["backend"],
        "backend_version": meta["backend_version"],
        "precision": meta["precision"],
        "target": engine.get("target"),
        "gpu_product": meta.get("gpu_product") or hardware.get("gpu_product"),
        "compute_capability": meta.get("compute_capability") or hardware.get("compute_capability"),
        "cpu_isa": hardware.get("cpu_isa"),
        "profile": meta.get("profile"),
        "sha256": meta["sha256"],
        "uri": engine.get("uri"),
        "metadata": meta,
    }


def _tensor_specs(onnx_path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs of the ONNX graph: name, numpy dtype, shape (-1 where dynamic)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}

    def spec(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        return {"name": v.name, "dtype": str(tensor_dtype_to_np_dtype(t.elem_type)),
                "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]}

    return [spec(v) for v in graph.input if v.name not in init], [spec(v) for v in graph.output]


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
    from trt_ops.digest import sha256_file
    from trt_ops.errors import IntegrityError, SpecError

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
    portable = Path(path, _PORTABLE_ONNX_SUBPATH)
    portable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, portable)
    inputs, outputs = _tensor_specs(portable)

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
            tuple(sorted({e["backend"] for e in entries})))
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



class EngineModel:
    """The engine chosen for this machine (or the portable ONNX), loaded and ready to run.

    ``predict`` takes a dict of input name -> array, or one array / DataFrame for a
    single-input model, and returns a dict of output name -> array. Batches larger than the
    engine's shape profile are run in slices.
    """

    def __init__(self, model_dir: str | os.PathLike, conf: dict[str, Any],
                 precision: str | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.inputs = conf["inputs"]
        self.outputs = conf["outputs"]
        self.engine, reasons = _pick(conf, precision)
        if self.engine is not None:
            self.runner = self._load_engine(Path(model_dir), self.engine)
            profile = self.engine.get("profile") or {}
            first = profile.get(self.inputs[0]["name"], {})
            self.max_batch = int(first["max"][0]) if first.get("max") else None
        elif conf.get("allow_portable_fallback"):
            _log.warning("no engine of this model runs here (%s); running the portable ONNX "
                         "with onnxruntime", "; ".join(reasons))
            self.runner = _PortableRunner(_verified(Path(model_dir), conf["portable_onnx"],
                                                    "portable ONNX"))
            self.max_batch = None
        else:
            raise _no_engine_error(conf, reasons, precision)

    @staticmethod
    def _load_engine(model_dir: Path, entry: dict[str, Any]) -> Any:
        from trt_ops.engines import get_backend

        path = _verified(model_dir, entry, f"engine {entry['name']}")
        return get_backend(entry["backend"]).load(path, entry["metadata"])

    @property
    def description(self) -> str:
        if self.engine is None:
            return "portable ONNX on onnxruntime"
        e = self.engine
        return f"engine {e['name']} ({e['backend']} {e['backend_version']}, {e['precision']})"

    def _feeds(self, data: Any) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        if isinstance(data, dict):
            missing = [i["name"] for i in self.inputs if i["name"] not in data]
            if missing:
                raise ValueError(f"inputs {missing} are missing; the model takes "
                                 f"{[i['name'] for i in self.inputs]}")
            return {i["name"]: np.asarray(data[i["name"]], dtype=i["dtype"]) for i in self.inputs}
        if len(self.inputs) != 1:
            raise TypeError(f"this model has {len(self.inputs)} inputs: pass a dict of "
                            f"{[i['name'] for i in self.inputs]} -> numpy array")
        spec = self.inputs[0]
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
            if all(d > 0 for d in spec["shape"][1:]):  # one flattened sample per row
                data = data.reshape(-1, *spec["shape"][1:])
        if isinstance(data, (np.ndarray, list)):
            return {spec["name"]: np.asarray(data, dtype=spec["dtype"])}
        raise TypeError(f"expected a dict of input name -> array, a numpy array or a pandas "
                        f"DataFrame, got {type(data).__name__}")

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        import numpy as np

        feeds = self._feeds(data)
        n = len(next(iter(feeds.values())))
        step = self.max_batch or n or 1
        parts = [self.runner.infer({k: v[i:i + step] for k, v in feeds.items()})
                 for i in range(0, max(n, 1), step)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class _PortableRunner:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(path), providers=_PORTABLE_PROVIDERS)
        self.output_names = [o.name for o in self._session.get_outputs()]

    def infer(self, feeds: dict[str, Any]) -> dict[str, Any]:
        return dict(zip(self.output_names, self._session.run(self.output_names, feeds)))


def _verified(model_dir: Path, entry: dict[str, Any], what: str) -> Path:
    """The file of ``entry``, after checking its bytes against the sha256 in MLmodel."""
    from trt_ops.digest import sha256_file
    from trt_ops.errors import IntegrityError

    path = model_dir / entry["path"]
    if not path.is_file():
        raise IntegrityError(f"{what} is missing from the model: {entry['path']}",
                             "the model's artifacts are incomplete; register the engines again")
    found = sha256_file(path)
    if found != entry["sha256"]:
        raise IntegrityError(
            f"{what} ({entry['path']}) is corrupt: its sha256 is {found}, MLmodel records "
            f"{entry['sha256']}; it was not loaded",
            "the artifact was changed or damaged in the artifact store after it was registered; "
            "restore it from the trt-ops store (uri in MLmodel) or register the engines again")
    return path


def _pick(conf: dict[str, Any], precision: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The first engine that runs on this machine, and why each one before it does not."""
    from trt_ops.engines import get_backend
    from trt_ops.errors import TrtOpsError
    from trt_ops.hardware import host_info

    host = host_info()
    reasons = []
    for entry in conf["engines"]:
        if precision and entry["precision"] != precision:
            reasons.append(f"{entry['name']}: not {precision}")
            continue
        try:
            backend = get_backend(entry["backend"])
            if why := backend.unavailable_reason():
                raise TrtOpsError(why)
            if backend.version() != entry["backend_version"] and entry["backend"] == "tensorrt":
                raise TrtOpsError(f"needs TensorRT {entry['backend_version']}, this machine "
                                  f"has {backend.version()}")
            backend.check_compatible(entry["metadata"], host)
            return entry, reasons
        except TrtOpsError as exc:
            reasons.append(f"{entry['name']}: {exc.problem}")
    return None, reasons


def _no_engine_error(conf: dict[str, Any], reasons: list[str], precision: str | None) -> Exception:
    from trt_ops.errors import EngineError
    from trt_ops.hardware import host_info

    host = host_info()
    offers = ", ".join(
        f"{e['name']} ({e['backend']} {e['backend_version']}, {e['precision']}, "
        f"{e['gpu_product'] or e['cpu_isa']}"
        + (f" sm{e['compute_capability']}" if e.get("compute_capability") else "") + ")"
        for e in conf["engines"])
    gpus = ", ".join(f"{g.product} (sm{g.compute_capability})" for g in host.gpus) or "no GPU"
    return EngineError(
        f"no engine of this model runs on this machine{f' at {precision}' if precision else ''}. "
        f"The model offers: {offers}. This machine: CPU {host.cpu_isa}, {gpus}. "
        f"Why not: {'; '.join(reasons)}",
        "load it on a machine of one of the offered classes, build and register an engine for "
        "this one, or save the model with allow_portable_fallback=True to run its ONNX here")


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
