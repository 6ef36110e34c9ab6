"""Source models from the MLflow registry: ``models:/name/version`` and ``models:/name@alias``.

An alias is resolved to its version first, so the export cache key names the exact weights:
when ``@champion`` moves to a new version, the pipeline exports again.
"""

from __future__ import annotations

import re
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


def load_registered_model(uri: str, tracking_uri: str | None = None) -> torch.nn.Module:
    """The PyTorch model registered under ``uri``, on CPU."""
    import mlflow.pytorch
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
        flavors = Model.load(concrete).flavors
    except MlflowException as exc:
        raise ModelSourceError(f"cannot read the MLmodel of {concrete}: {exc.message}",
                               "check that the artifact store is reachable") from exc
    if "pytorch" not in flavors:
        raise ModelSourceError(f"{uri} ({concrete}) has flavors {sorted(flavors)}, not pytorch",
                               "register the model with mlflow.pytorch.log_model")
    model = mlflow.pytorch.load_model(concrete, map_location="cpu")
    if type(model).__name__ == "GraphModule":
        # pt2: a program traced at the example's shapes, which cannot be re-exported with a
        # dynamic batch axis
        raise ModelSourceError(
            f"{uri} ({concrete}) was logged in MLflow's pt2 format, traced at fixed shapes",
            "log it with mlflow.pytorch.log_model(..., serialization_format='pickle'), or export "
            "a program with a dynamic batch yourself and name it in model.program")
    return model
