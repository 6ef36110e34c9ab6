"""A registered PyTorch model is never unpickled: a pickled one is refused with the way to
register it safely, and a token given for the registry never stays in the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo PWNED > pwned.txt",))


@pytest.fixture(scope="module")
def pickled_model(digits_dir: Path, servers) -> str:
    """The digits CNN logged the way MLflow allows but trt-ops refuses: a pickled module."""
    import mlflow
    import mlflow.pytorch
    import torch

    from trt_ops.examples.digits import build_model
    from trt_ops.registry.client import mlflow_scope

    model = build_model()
    model.load_state_dict(torch.load(digits_dir / "model.pt", weights_only=True))
    with mlflow_scope(servers.tracking_uri), mlflow.start_run():
        mlflow.pytorch.log_model(model.eval(), name="model", registered_model_name="digits-pickled",
                                 pip_requirements=["torch"], serialization_format="pickle")
    return "models:/digits-pickled/1"


def test_pickled_registered_model_is_refused_unread(pickled_model, servers, tmp_path, capsys,
                                                    monkeypatch):
    import yaml

    from trt_ops.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    monkeypatch.chdir(tmp_path)
    spec = {"name": "p", "model": {"registered": pickled_model, "outputs": ["logits"],
                                   "inputs": [{"name": "image", "shape": ["batch", 1, 8, 8]}]},
            "data": {"calibration": "c.npz", "validation": "v.npz"}, "store": "store"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    rc = main(["export", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "export.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "logged as a pickled module" in err and "does not unpickle" in err
    assert "serialization_format='pt2'" in err and "input_example" in err
    assert "serialization_format='pickle')" not in err.split("fix:")[1]  # never advised
    assert "Traceback" not in err
    assert not (tmp_path / "store").exists() and not (tmp_path / "export.json").exists()


def test_registered_program_carrying_a_pickle_is_refused(digits_dir, servers, tmp_path,
                                                         monkeypatch):
    """A pt2 model whose archive was tampered with after logging: refused, payload not run."""
    import zipfile

    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow import MlflowClient

    from trt_ops.errors import ModelSourceError
    from trt_ops.examples.digits import build_model
    from trt_ops.models.sources import load_model
    from trt_ops.registry.client import mlflow_scope

    model = build_model()
    model.load_state_dict(torch.load(digits_dir / "model.pt", weights_only=True))
    saved = tmp_path / "saved"
    mlflow.pytorch.save_model(model.eval(), saved, serialization_format="pt2",
                              input_example=torch.randn(2, 1, 8, 8).numpy(),
                              pip_requirements=["torch"])
    program = saved / "data" / "model.pt2"
    good = program.read_bytes()
    (tmp_path / "good.pt2").write_bytes(good)
    with zipfile.ZipFile(tmp_path / "good.pt2") as src, zipfile.ZipFile(program, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("sample_inputs/model.pt"):
                import pickle

                data = pickle.dumps(_Payload())
            dst.writestr(item, data)
    with mlflow_scope(servers.tracking_uri), mlflow.start_run() as run:
        mlflow.log_artifacts(str(saved), "model")
    client = MlflowClient(servers.tracking_uri)
    client.create_registered_model("digits-tampered")
    client.create_model_version("digits-tampered", f"runs:/{run.info.run_id}/model",
                                run.info.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match="not a plain torch.export program") as exc:
        load_model({"registered": "models:/digits-tampered/1"})
    assert "does not unpickle" in exc.value.fix
    assert not (tmp_path / "pwned.txt").exists()


def test_registered_program_loads_without_unpickling(digits_dir, servers, monkeypatch):
    """The safe way the refusal advises: MLflow's pt2 format, a batch of 2 in the example."""
    import mlflow
    import mlflow.pytorch
    import torch

    from trt_ops.examples.digits import build_model
    from trt_ops.models.sources import load_model
    from trt_ops.registry.client import mlflow_scope

    model = build_model()
    model.load_state_dict(torch.load(digits_dir / "model.pt", weights_only=True))
    with mlflow_scope(servers.tracking_uri), mlflow.start_run():
        mlflow.pytorch.log_model(model.eval(), name="model", registered_model_name="digits-pt2",
                                 pip_requirements=["torch"], serialization_format="pt2",
                                 input_example=torch.randn(2, 1, 8, 8).numpy())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.tracking_uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = load_model({"registered": "models:/digits-pt2/1"})
    x = torch.randn(5, 1, 8, 8)  # another batch size than the example's
    torch.testing.assert_close(loaded(x), model(x))


def test_no_token_left_in_the_environment_after_registering(servers, tmp_path, monkeypatch):
    """The token of a registration is in the environment only while MLflow needs it."""
    import mlflow
    from mlflow import MlflowClient

    from trt_ops.registry.client import mlflow_scope

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    seen = []
    with mlflow_scope(servers.tracking_uri, token="tok-registration-secret"):
        seen.append(os.environ.get("MLFLOW_TRACKING_TOKEN"))
        with mlflow.start_run():
            mlflow.log_param("p", 1)
        MlflowClient(servers.tracking_uri).create_registered_model("token-check")
    assert seen == ["tok-registration-secret"]
    assert "tok-registration-secret" not in "".join(os.environ.values())
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
