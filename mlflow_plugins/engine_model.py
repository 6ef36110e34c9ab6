"""The engine of a ``trt_engine`` model that runs on this machine, loaded and ready to predict.

:class:`EngineModel` is what :func:`mlflow_plugins.trt_engine.load_model` and pyfunc's
``predict`` use: it picks the first engine of the model whose backend runs here and accepts
this machine (GPU product and compute capability, TensorRT version and what version- and
hardware-compatible engines allow, or CPU class), checks its sha256, and loads it; with none,
the portable ONNX on onnxruntime when the model allows it, else an error listing what the model
offers and why each engine does not fit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

_PORTABLE_PROVIDERS = ["CPUExecutionProvider"]

_log = logging.getLogger("mlflow_plugins.trt_engine")


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
            self.max_batch = _contract(self.engine).max_batch()
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
        return get_backend(entry["backend"]).load(path, _contract(entry))

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
    from trt_ops.errors import IntegrityError
    from trt_ops.store.digest import sha256_file

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


def _contract(entry: dict[str, Any]) -> Any:
    from trt_ops.engines.contract import engine_from_metadata

    return engine_from_metadata(entry["metadata"], f"engine {entry['name']} in MLmodel")


def _pick(conf: dict[str, Any], precision: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The first engine that runs on this machine, and why each one before it does not; the
    engines recommended for their class (the fastest that passed) are tried first."""
    from trt_ops.engines import get_backend
    from trt_ops.errors import TrtOpsError
    from trt_ops.targets.host import host_info

    host = host_info()
    reasons = []
    for entry in sorted(conf["engines"], key=lambda e: not e.get("recommended")):
        if precision and entry["precision"] != precision:
            reasons.append(f"{entry['name']}: not {precision}")
            continue
        try:
            backend = get_backend(entry["backend"])
            if why := backend.unavailable_reason():
                raise TrtOpsError(why)
            # the backend's own rules: GPU, compute capability, TensorRT version, and what
            # hardware- and version-compatible engines allow
            backend.check_compatible(_contract(entry), host)
            return entry, reasons
        except TrtOpsError as exc:
            reasons.append(f"{entry['name']}: {exc.problem}")
    return None, reasons


def _no_engine_error(conf: dict[str, Any], reasons: list[str], precision: str | None) -> Exception:
    from trt_ops.errors import EngineError
    from trt_ops.targets.host import host_info

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
