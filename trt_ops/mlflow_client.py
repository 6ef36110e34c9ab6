"""An MlflowClient for (tracking URI, registry URI) that fails fast, with the fix, when MLflow is down.

MLflow's REST client retries a dead server for minutes and then reports a urllib3 stack; a
pipeline task should instead say in seconds which URI it could not reach and what to check.
The Airflow hook resolves a connection into these arguments and calls :func:`mlflow_client`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from trt_ops.errors import StoreError

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")
_PROBE_SECONDS = 10


class RegistryError(StoreError):
    """The MLflow tracking server or model registry is unreachable or refused a request."""


def _unreachable(uri: str, why: object) -> RegistryError:
    return RegistryError(
        f"MLflow at {uri} is unreachable: {why}",
        "start the MLflow server or fix the URI (registry.tracking_uri in the spec, the Airflow "
        "MLflow connection, or MLFLOW_TRACKING_URI), and check that the network allows it")


def probe(uri: str) -> None:
    """Raises :class:`RegistryError` unless an HTTP(S) MLflow server answers at ``uri``."""
    if urlparse(uri).scheme not in ("http", "https"):
        return  # sqlite:/// or a local folder: nothing to reach
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=_PROBE_SECONDS)
    except requests.RequestException as exc:
        raise _unreachable(uri, type(exc).__name__) from exc
    if response.status_code >= 500:
        raise _unreachable(uri, f"/health answered HTTP {response.status_code}")


def mlflow_client(tracking_uri: str | None = None, registry_uri: str | None = None,
                  token: str | None = None) -> MlflowClient:
    """A client for the given servers (defaults: MLflow's own resolution), checked to be up.

    ``token`` is a bearer token for a server behind authentication; MLflow reads it from the
    environment only, so it is set there for this process.
    """
    import mlflow
    from mlflow import MlflowClient

    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    tracking = tracking_uri or mlflow.get_tracking_uri()
    registry = registry_uri or tracking_uri or mlflow.get_registry_uri()
    probe(tracking)
    if registry != tracking:
        probe(registry)
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


def call(client: MlflowClient, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with connection failures turned into a :class:`RegistryError`."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except MlflowException as exc:
        message = str(exc.message if hasattr(exc, "message") else exc)
        if "Max retries" in message or "Connection" in message or "API request" in message:
            raise _unreachable(client.tracking_uri, f"{what} failed") from exc
        raise RegistryError(f"MLflow refused {what}: {message.splitlines()[0][:300]}",
                            "check the server's log and your permissions on it") from exc
