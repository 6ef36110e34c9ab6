"""A source model taken from the registry: models:/name/version and models:/name@alias."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def torch_versions(digits_dir: Path, servers):
    """Two versions of the PyTorch digits model; the alias ``champion`` on version 1."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow import MlflowClient

    from trt_ops.examples.digits import build_model

    mlflow.set_tracking_uri(servers.tracking_uri)
    model = build_model()
    model.load_state_dict(torch.load(digits_dir / "model.pt", weights_only=True))
    client = MlflowClient(servers.tracking_uri)
    mlflow.set_experiment("digits-training")
    example = torch.randn(2, 1, 8, 8).numpy()  # a batch of 2: the program's batch stays dynamic
    for _ in range(2):
        with mlflow.start_run():
            mlflow.pytorch.log_model(model.eval(), name="model",
                                     registered_model_name="digits-torch",
                                     pip_requirements=["torch"], input_example=example,
                                     serialization_format="pt2")
    client.set_registered_model_alias("digits-torch", "champion", "1")
    return client


def test_export_from_an_alias_and_alias_moves_change_the_key(torch_versions, servers, tmp_path,
                                                             monkeypatch):
    from trt_ops.models.sources import source_digest
    from trt_ops.spec import InputSpec
    from trt_ops.stages.export import export_onnx
    from trt_ops.store import open_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    source = {"registered": "models:/digits-torch@champion"}
    assert source_digest(source) == "registered:models:/digits-torch/1"
    manifest = export_onnx(source, (InputSpec(name="image", shape=[1, 1, 8, 8]),), open_store(tmp_path),
                           output_names=("logits",))
    assert manifest.info["output_names"] == ["logits"]
    torch_versions.set_registered_model_alias("digits-torch", "champion", "2")
    assert source_digest(source) == "registered:models:/digits-torch/2"


def test_unknown_registered_model_is_a_clear_error(servers, monkeypatch):
    from trt_ops.errors import ModelSourceError
    from trt_ops.models.sources import load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    with pytest.raises(ModelSourceError, match="cannot find the registered model"):
        load_model({"registered": "models:/no-such-model@champion"})
    with pytest.raises(ModelSourceError, match="models:/<name>/<version>"):
        load_model({"registered": "models:/digits-torch/latest/x"})
