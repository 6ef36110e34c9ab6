"""The ``mlflow`` connection: tracking URI (host), registry URI (extra) and token (password).

The hook only resolves the connection into the settings the registry code needs
(:func:`trt_ops.registry.client.mlflow_client` and :func:`trt_ops.stages.register.register_engines`); it
imports no MLflow itself. Example connection, as an environment variable::

    AIRFLOW_CONN_MLFLOW_DEFAULT='{"conn_type": "mlflow", "host": "http://mlflow:5000",
                                  "password": "<token>", "extra": {"registry_uri": ""}}'
"""

from __future__ import annotations

import dataclasses
import logging
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

log = logging.getLogger(__name__)


def _mask(token: str | None, *uris: str | None) -> None:
    """Registers the token, and any password in the URIs' userinfo, with Airflow's secrets
    masker: task logs (and the supervisor's) show them as ``***``."""
    from urllib.parse import urlparse

    from airflow.sdk.log import mask_secret

    secrets = [token] + [urlparse(u).password for u in uris if u and "@" in u]
    for secret in secrets:
        if secret:
            mask_secret(secret)


@dataclasses.dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str | None
    registry_uri: str | None
    token: str | None = None

    def __repr__(self) -> str:  # never log the token
        return (f"MlflowSettings(tracking_uri={self.tracking_uri!r}, "
                f"registry_uri={self.registry_uri!r}, token={'***' if self.token else None})")


class MlflowHook(BaseHook):
    """Resolves an ``mlflow`` connection.

    :param mlflow_conn_id: the connection; ``None`` uses MLflow's own environment
        (``MLFLOW_TRACKING_URI`` and friends). When the default connection
        ``mlflow_default`` is not defined, the hook falls back to that environment too, so the
        example DAG runs without setup; any other missing connection is an error.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def settings(self) -> MlflowSettings:
        if not self.mlflow_conn_id:
            return MlflowSettings(None, None)
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.mlflow_conn_id != self.default_conn_name:
                raise
            log.warning("connection %r is not defined: using MLflow's environment "
                        "(MLFLOW_TRACKING_URI)", self.mlflow_conn_id)
            return MlflowSettings(None, None)
        return self.settings_from_connection(conn)

    @staticmethod
    def settings_from_connection(conn: Any) -> MlflowSettings:
        if conn.conn_type and conn.conn_type != "mlflow":
            raise ValueError(f"connection {conn.conn_id!r} has type {conn.conn_type!r}, expected "
                             "'mlflow': create it with conn_type mlflow")
        tracking = (conn.host or "").strip() or None
        if tracking and conn.port and "://" in tracking and tracking.count(":") < 2:
            tracking = f"{tracking}:{conn.port}"
        extra = conn.extra_dejson or {}
        registry = (extra.get("registry_uri") or "").strip() or tracking
        _mask(conn.password, tracking, registry)
        return MlflowSettings(tracking, registry, conn.password or None)

    def get_conn(self) -> Any:
        """An ``MlflowClient`` for this connection (its token applies inside
        :func:`trt_ops.registry.client.mlflow_scope`)."""
        from trt_ops.registry.client import mlflow_client

        s = self.settings
        return mlflow_client(s.tracking_uri, s.registry_uri)

    def test_connection(self) -> tuple[bool, str]:
        from trt_ops.registry.client import mlflow_scope

        s = self.settings
        try:
            with mlflow_scope(s.tracking_uri, s.registry_uri, s.token):
                self.get_conn().search_registered_models(max_results=1)
        except Exception as exc:  # noqa: BLE001 (reported by the UI's "Test" button)
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"MLflow at {self.settings.tracking_uri} answered"
