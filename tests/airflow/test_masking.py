"""Credentials reach Airflow's secrets masker: the MLflow connection's token and URI passwords,
and passwords in the spec's URIs, show as *** in task logs."""

from __future__ import annotations

import json

import pytest


def _masked(text: str) -> str:
    from airflow.sdk.log import _secrets_masker

    return _secrets_masker().redact(text)


def test_mlflow_connection_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from trt_ops.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_MASKED", json.dumps({
        "conn_type": "mlflow", "host": "https://carol:uri-pass-7731@mlflow.example.com",
        "password": "conn-token-5512"}))
    settings = MlflowHook("mlflow_masked").settings
    assert settings.token == "conn-token-5512"
    line = f"MLflow at {settings.tracking_uri} refused token conn-token-5512"
    assert _masked(line) == "MLflow at https://carol:***@mlflow.example.com refused token ***"


def test_spec_uri_passwords_are_masked_by_the_operators(digits_dir) -> None:
    from trt_ops.operators import ExportOnnxOperator
    from trt_ops.spec import load_spec

    doc = load_spec(digits_dir / "pipeline.yaml").model_dump(mode="json", exclude_unset=True)
    doc["registry"] = {"tracking_uri": "http://dave:spec-pass-9921@127.0.0.1:9"}
    spec = ExportOnnxOperator(task_id="export", spec=doc).pipeline_spec
    assert "spec-pass-9921" in spec.registry.tracking_uri
    assert "spec-pass-9921" not in _masked(f"cannot reach {spec.registry.tracking_uri}")
