"""Provider registration and the hooks: the ``mlflow`` connection type and its form, and S3
through the amazon provider's ``aws`` connection with ``endpoint_url`` in its extras."""

from __future__ import annotations

import json
import socket
from contextlib import closing
from pathlib import Path

import pytest


def test_provider_info_matches_airflows_schema() -> None:
    import importlib.metadata

    import airflow
    import jsonschema

    from trt_ops.provider_info import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    [entry] = [e for e in importlib.metadata.entry_points(group="apache_airflow_provider")
               if e.value.startswith("trt_ops.")]
    assert entry.load() is get_provider_info


def test_airflow_offers_the_mlflow_connection_form() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "trt-ops" in pm.providers
    behaviour = pm.field_behaviours["mlflow"]
    assert behaviour["relabeling"] == {"host": "Tracking URI", "password": "Token"}
    widget = pm.connection_form_widgets["extra__mlflow__registry_uri"]
    assert widget.field["schema"]["title"] == "Registry URI"


def test_mlflow_hook_resolves_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from trt_ops.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_PROD", json.dumps({
        "conn_type": "mlflow", "host": "https://mlflow.example.com", "password": "s3cret",
        "extra": {"registry_uri": "databricks-uc"}}))
    settings = MlflowHook("mlflow_prod").settings
    assert (settings.tracking_uri, settings.registry_uri, settings.token) == (
        "https://mlflow.example.com", "databricks-uc", "s3cret")
    assert "s3cret" not in repr(settings)

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_LOCAL", json.dumps({"conn_type": "mlflow",
                                                                 "host": "sqlite:///m.db"}))
    assert MlflowHook("mlflow_local").settings.registry_uri == "sqlite:///m.db"


def test_mlflow_hook_refuses_a_missing_named_connection() -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from trt_ops.hooks.mlflow import MlflowHook

    with pytest.raises(AirflowNotFoundException):
        _ = MlflowHook("no_such_connection").settings


def test_store_hook_speaks_s3_through_the_aws_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's S3 server over HTTP; the endpoint comes only from the connection's extras."""
    import boto3
    from moto.server import ThreadedMotoServer

    from trt_ops.hooks.store import ArtifactStoreHook

    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for var in ("AWS_ENDPOINT_URL", "TRT_OPS_S3_ENDPOINT_URL"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AIRFLOW_CONN_ENGINES_S3", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing"
                     ).create_bucket(Bucket="engines")
        store = ArtifactStoreHook(aws_conn_id="engines_s3").open("s3://engines/digits")
        artifact = store.put_json("runs/r1/summary.json", {"steps": []})
        assert artifact.uri == "s3://engines/digits/runs/r1/summary.json"
        assert store.read_json("runs/r1/summary.json") == {"steps": []}
    finally:
        server.stop()
