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


@pytest.fixture(scope="module")
def onnx_version(digits_dir: Path, servers, tmp_path_factory):
    """The digits model exported to ONNX and logged with mlflow.onnx; ``champion`` on it."""
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow import MlflowClient

    from trt_ops.spec import InputSpec
    from trt_ops.stages.export import export_onnx
    from trt_ops.store import open_store

    store = open_store(tmp_path_factory.mktemp("onnx-store"))
    exported = export_onnx({"factory": "trt_ops.examples.digits:build_model",
                            "state_dict": str(digits_dir / "model.pt")},
                           (InputSpec(name="image", shape=["batch", 1, 8, 8]),), store,
                           output_names=("logits",))
    model = onnx.load(store.fetch(exported.artifact("onnx")))
    mlflow.set_tracking_uri(servers.tracking_uri)
    mlflow.set_experiment("digits-onnx")
    with mlflow.start_run():
        mlflow.onnx.log_model(model, name="model", registered_model_name="digits-onnx",
                              pip_requirements=["onnx"])
    client = MlflowClient(servers.tracking_uri)
    client.set_registered_model_alias("digits-onnx", "champion", "1")
    return model


def test_a_registered_onnx_model_is_an_onnx_source(onnx_version, servers, tmp_path, monkeypatch):
    import onnx

    from trt_ops.models.onnx import local_onnx
    from trt_ops.spec import InputSpec
    from trt_ops.stages.export import export_onnx
    from trt_ops.store import open_store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    monkeypatch.setenv("TRT_OPS_CACHE_DIR", str(tmp_path / "cache"))
    store = open_store(tmp_path / "store")
    inputs = (InputSpec(name="image", shape=["batch", 1, 8, 8]),)
    manifest = export_onnx({"onnx": "models:/digits-onnx@champion"}, inputs, store,
                           output_names=("logits",))
    assert manifest.status == "OK"
    stored = onnx.load(local_onnx(manifest, store))  # with the external data MLflow wrote
    assert [o.name for o in stored.graph.output] == ["logits"]
    assert {t.name for t in stored.graph.initializer} == \
        {t.name for t in onnx_version.graph.initializer}
    # the version is downloaded once; the second export is a cache hit on its content
    again = export_onnx({"onnx": "models:/digits-onnx/1"}, inputs, store, output_names=("logits",))
    assert again.key == manifest.key


def test_each_registered_flavor_is_named_in_its_own_field(onnx_version, torch_versions, servers,
                                                           monkeypatch, tmp_path):
    from trt_ops.errors import ModelSourceError
    from trt_ops.models.onnx_source import fetch
    from trt_ops.models.sources import load_model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    monkeypatch.setenv("TRT_OPS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelSourceError, match="is an ONNX model") as onnx_in_registered:
        load_model({"registered": "models:/digits-onnx/1"})
    assert "onnx: models:/digits-onnx/1" in onnx_in_registered.value.fix
    with pytest.raises(ModelSourceError, match="not onnx") as torch_in_onnx:
        fetch("models:/digits-torch/1")
    assert "model.registered" in torch_in_onnx.value.fix
    with pytest.raises(ModelSourceError, match="cannot find the registered model"):
        fetch("models:/no-such-onnx@champion")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))
