"""An MlflowClient for (tracking URI, registry URI) that fails fast, with the fix, when MLflow is down.

MLflow's REST client retries a dead server for minutes and then reports a urllib3 stack; a
pipeline task should instead say in seconds which URI it could not reach and what to check.
The Airflow hook resolves a connection into these arguments and calls :func:`mlflow_client`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
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


_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
# Scopes change process-wide state: two threads interleaving save/restore would leave one's URIs
# behind, so scopes run one at a time (re-entrant for nested scopes in one thread).
_SCOPE_LOCK = threading.RLock()


@contextlib.contextmanager
def mlflow_scope(tracking_uri: str | None = None, registry_uri: str | None = None,
                 token: str | None = None, experiment_id: str | None = None) -> Iterator[None]:
    """MLflow's process-wide settings pointed at these servers for the block, then restored.

    Parts of MLflow resolve the server from its globals rather than from a client (``Model.log``,
    the registry's check of a logged model), take the experiment of a logged model from the
    process's active experiment before its run's, and read a bearer token from the environment
    only. This is the one place trt-ops touches those globals: inside the block they name the
    given servers; afterwards the environment and MLflow's globals are exactly as before, so no
    token and no URI leaks into later tasks of the same worker process.
    """
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in _ENV}
    wanted = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": registry_uri or tracking_uri,
              "MLFLOW_TRACKING_TOKEN": token}
    with _SCOPE_LOCK:
        saved = (tracking_utils._tracking_uri, registry_utils._registry_uri,
                 fluent._active_experiment_id)
        try:
            for key, value in wanted.items():
                if value:
                    os.environ[key] = value
            if tracking_uri:
                tracking_utils._tracking_uri = tracking_uri
            if registry_uri or tracking_uri:
                registry_utils._registry_uri = registry_uri or tracking_uri
            fluent._active_experiment_id = experiment_id  # never one of another server's
            for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
                os.environ.pop(key, None)
            if experiment_id:
                os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
            yield
        finally:
            (tracking_utils._tracking_uri, registry_utils._registry_uri,
             fluent._active_experiment_id) = saved
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def mlflow_client(tracking_uri: str | None = None, registry_uri: str | None = None) -> MlflowClient:
    """A client for the given servers (defaults: MLflow's own resolution), checked to be up."""
    import mlflow
    from mlflow import MlflowClient

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
