"""Source models from the MLflow registry: ``models:/name/version`` and ``models:/name@alias``.

An alias is resolved to its version first, so the export cache key names the exact weights:
when ``@champion`` moves to a new version, the pipeline exports again. PyTorch models come as
torch.export programs (``model.registered``); ONNX models, logged with ``mlflow.onnx``, are named
in ``model.onnx`` like an ONNX file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from trt_ops.errors import ModelSourceError

if TYPE_CHECKING:
    import torch

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def parse(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a registered-model URI."""
    m = _URI.match(uri.strip())
    if not m:
        raise ModelSourceError(f"{uri!r} is not a registered model URI",
                               "write models:/<name>/<version> or models:/<name>@<alias>")
    return m["name"], m["version"], m["alias"]


def resolve(uri: str, tracking_uri: str | None = None) -> str:
    """``models:/name/<version>`` for ``uri``, with an alias resolved to the version it points at."""
    from trt_ops.registry.client import call, mlflow_client

    name, version, alias = parse(uri)
    client = mlflow_client(tracking_uri)
    if alias:
        mv = call(client, f"lookup of alias {alias!r} of model {name!r}",
                  client.get_model_version_by_alias, name, alias)
        version = mv.version
    else:
        call(client, f"lookup of version {version} of model {name!r}",
             client.get_model_version, name, version)
    return f"models:/{name}/{version}"


def _flavors(uri: str, tracking_uri: str | None) -> tuple[str, dict]:
    """``models:/name/<version>`` of ``uri`` and the flavors of its MLmodel."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from trt_ops.registry.client import RegistryError

    try:
        concrete = resolve(uri, tracking_uri)
    except RegistryError as exc:
        raise ModelSourceError(f"cannot find the registered model {uri}: {exc.problem}",
                               "check the name and version or alias in the MLflow UI, and the "
                               "tracking URI (MLFLOW_TRACKING_URI)") from exc
    try:
        return concrete, Model.load(concrete).flavors
    except MlflowException as exc:
        raise ModelSourceError(f"cannot read the MLmodel of {concrete}: {exc.message}",
                               "check that the artifact store is reachable") from exc


SAFE_FORMATS = (
    "log it again as a torch.export program: mlflow.pytorch.log_model(model, name=..., "
    "input_example=<a batch of 2 or more samples>, serialization_format='pt2') (a batch of 2+ "
    "keeps the batch axis dynamic); or log it with mlflow.onnx.log_model and name it in "
    "model.onnx (models:/name/version); or save "
    "model.state_dict() and name it in model.state_dict with the model.factory that builds it")


def load_registered_model(uri: str, tracking_uri: str | None = None) -> torch.nn.Module:
    """The PyTorch model registered under ``uri``, on CPU.

    Only a torch.export program (MLflow's ``pt2`` format) is loaded, after checking that it
    holds no pickle payload; a pickled model is refused unread, since unpickling runs code.
    """
    import tempfile

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from trt_ops.models.sources import load_program

    concrete, flavors = _flavors(uri, tracking_uri)
    if "pytorch" not in flavors:
        if "onnx" in flavors:
            raise ModelSourceError(f"{uri} ({concrete}) is an ONNX model, not a PyTorch one",
                                   f"name it in model.onnx instead of model.registered: "
                                   f"onnx: {uri}")
        raise ModelSourceError(f"{uri} ({concrete}) has flavors {sorted(flavors)}, not pytorch",
                               SAFE_FORMATS)
    data = str(flavors["pytorch"].get("model_data") or "data")
    with tempfile.TemporaryDirectory(prefix="trt-ops-registered-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"{concrete}/{data}", dst_path=tmp, tracking_uri=tracking_uri))
        except MlflowException as exc:
            raise ModelSourceError(f"cannot download {concrete}/{data}: {exc.message}",
                                   "check that the artifact store is reachable") from exc
        program = local / "model.pt2"
        if not program.is_file():
            # model.pth: torch.save of the whole module, loadable only by unpickling it
            raise ModelSourceError(
                f"{uri} ({concrete}) was logged as a pickled module (serialization_format="
                "'pickle'); trt-ops does not unpickle models, since loading one can run any code "
                "it carries", SAFE_FORMATS)
        return load_program(program, what=f"{uri} ({concrete})")


def fetch_registered_onnx(uri: str, tracking_uri: str | None = None) -> Path:
    """The ``model.onnx`` of the ONNX model registered under ``uri`` on local disk, its external
    data beside it. A version's files never change, so each is downloaded once into the download
    cache (under the registry's address, the name and the version), whole or not at all."""
    import hashlib
    import os
    import shutil
    import tempfile

    import mlflow
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from trt_ops.store import blob_cache_dir

    concrete, flavors = _flavors(uri, tracking_uri)
    if "onnx" not in flavors:
        fix = ("name it in model.registered instead of model.onnx" if "pytorch" in flavors else
               "log the model with mlflow.onnx.log_model, or name its ONNX file in model.onnx")
        raise ModelSourceError(f"{uri} ({concrete}) has flavors {sorted(flavors)}, not onnx", fix)
    name, version, _ = parse(concrete)
    registry = tracking_uri or mlflow.get_tracking_uri()
    where = hashlib.sha256(registry.encode()).hexdigest()[:16]
    folder = blob_cache_dir() / "registry" / where / name / str(version)
    onnx_file = folder / str(flavors["onnx"].get("data") or "model.onnx")
    if not onnx_file.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=concrete, dst_path=str(tmp),
                                                tracking_uri=tracking_uri)
            try:
                os.replace(tmp, folder)  # whole or not at all; a racing download may have won
            except OSError:
                if not onnx_file.is_file():
                    raise
        except MlflowException as exc:
            raise ModelSourceError(f"cannot download {concrete}: {exc.message}",
                                   "check that the artifact store is reachable") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not onnx_file.is_file():
        raise ModelSourceError(f"{uri} ({concrete}) holds no {onnx_file.name}",
                               "log the model again with mlflow.onnx.log_model")
    return onnx_file
