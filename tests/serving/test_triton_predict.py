"""A deployment in a local folder: its files against the registered version, and ``predict``
through ``tritonclient`` over HTTP.

Triton cannot run here: ``predict`` talks to ``StandInTriton`` (tests/serving/triton_standin.py),
which serves the written repository's onnxruntime model over Triton's HTTP protocol.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import deploy_client, free_port, mlflow_cli
from tests.serving.triton_standin import StandInTriton


@pytest.fixture(scope="module")
def local_deployment(digits_version, servers, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("triton-repository")
    described = deploy_client(servers).create_deployment(
        "digits", "models:/digits-serve@champion", config={"repository": str(root)})
    (repository,) = described["repositories"]
    return {"root": root, "repository": root / repository, "described": described}


@pytest.fixture(scope="module")
def flavor(digits_version, servers) -> dict:
    import mlflow

    mlflow.set_tracking_uri(servers.tracking_uri)
    return mlflow.models.get_model_info("models:/digits-serve@champion").flavors["trt_engine"]


@pytest.fixture(scope="module")
def images(digits_dir: Path) -> np.ndarray:
    return np.load(digits_dir / "validation.npz")["image"][:40].astype(np.float32)


def test_local_repository_matches_the_registered_version(local_deployment, flavor,
                                                         digits_version):
    from tritonclient.grpc import model_config_pb2 as mc

    from mlflow_plugins.triton.config import parse
    from trt_ops.store.digest import sha256_file

    folder = local_deployment["repository"] / "digits"
    version = digits_version.info["version"]
    engine = flavor["engines"][0]  # the fastest engine of this CPU class is served
    assert local_deployment["repository"].name == engine["target"]
    cfg = parse((folder / "config.pbtxt").read_text())  # Triton's schema, no unknown field
    assert cfg.backend == "onnxruntime"
    assert list(cfg.version_policy.specific.versions) == [int(version)]
    assert cfg.max_batch_size == engine["profile"]["image"]["max"][0]
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == [
        (t["name"], "TYPE_FP32", t["shape"][1:]) for t in flavor["inputs"]]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [
        (t["name"], t["shape"][1:]) for t in flavor["outputs"]]
    assert sha256_file(folder / version / "model.onnx") == engine["sha256"]
    record = json.loads((folder / "mlflow-meta.json").read_text())
    assert record["model_uri"] == f"models:/digits-serve/{version}"
    assert record["engines"][0]["sha256"] == engine["sha256"]
    assert record["gates"]["all_gates_passed"] == "true"
    assert record["gates"]["metrics"][engine["name"]]["top1_agreement"] >= 0.98
    assert any("faster" in n for n in record["not_deployed"])  # the other precision


def test_predict_through_triton_equals_pyfunc(local_deployment, servers, images, monkeypatch):
    import mlflow.pyfunc

    expected = mlflow.pyfunc.load_model("models:/digits-serve@champion").predict(
        {"image": images})["logits"]
    with StandInTriton(local_deployment["repository"]) as triton:
        monkeypatch.setenv("TRITON_URL", triton.url)
        client = deploy_client(servers, f"triton:{local_deployment['root']}")
        got = np.asarray(client.predict("digits", {"image": images})["predictions"]["logits"])
        assert triton.requests == 2  # 40 images, max_batch_size 32: Triton refuses more
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_predict_from_the_cli(local_deployment, cli_env, images, tmp_path):
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"image": images[:3].tolist()}))
    with StandInTriton(local_deployment["repository"]) as triton:
        proc = mlflow_cli({**cli_env, "TRITON_URL": triton.url}, "deployments", "predict",
                          "-t", f"triton:{local_deployment['root']}", "--name", "digits",
                          "--input-path", str(inputs))
    logits = np.asarray(json.loads(proc.stdout.strip().splitlines()[-1])["predictions"]["logits"])
    assert logits.shape == (3, 10)


def test_predict_without_a_server_says_so(local_deployment, servers, images, monkeypatch):
    from mlflow.exceptions import MlflowException

    monkeypatch.delenv("TRITON_URL", raising=False)
    client = deploy_client(servers, f"triton:{local_deployment['root']}")
    with pytest.raises(MlflowException) as err:
        client.predict("digits", {"image": images})
    assert "no Triton server is configured for deployment digits" in err.value.message
    assert "triton_url=" in err.value.message
    monkeypatch.setenv("TRITON_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MlflowException, match="is unreachable"):
        client.predict("digits", {"image": images})


def test_run_local_writes_a_folder_and_prints_how_to_serve_it(digits_version, servers, tmp_path,
                                                            capsys):
    from mlflow_plugins.triton.deployments import run_local

    deploy_client(servers)  # the tracking URI
    run_local("triton", "digits", "models:/digits-serve@champion",
              config={"repository": str(tmp_path)})
    (repository,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (repository / "digits" / "config.pbtxt").is_file()
    out = capsys.readouterr().out
    assert f"-v {repository}:/models" in out and "--model-repository=/models" in out
