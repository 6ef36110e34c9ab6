"""The ``triton`` deployments target through MLflow's CLI and Python client, against a real
MLflow server, with the repository on S3 (moto over HTTP).

The TensorRT versions hold placeholder plan bytes (tests/serving/conftest.py): these tests check
what is written and refused, not that Triton runs the plans.
"""

from __future__ import annotations

import json

import pytest

from tests.serving.conftest import deploy_client, mlflow_cli


def _keys(servers, root: str) -> list[str]:
    from trt_ops.store import open_store

    return open_store(root).list_keys()


def _read(servers, root: str, key: str) -> bytes:
    return servers.s3().get_object(Bucket=servers.bucket, Key=_s3_key(root, key))["Body"].read()


def _config(servers, root: str, repository: str, name: str):
    """The written config.pbtxt, parsed by Triton's ModelConfig protobuf."""
    from mlflow_plugins.triton.config import parse

    return parse(_read(servers, root, f"{repository}/{name}/config.pbtxt").decode())


def test_create_get_list_update_delete_through_the_cli(trt_versions, servers, cli_env,
                                                       s3_repository):
    # version 1 (champion): H100 and H200 share compute capability 9.0 -> one repository each
    created = mlflow_cli(cli_env, "deployments", "create", "-t", "triton", "--name", "digits",
                         "-m", "models:/digits-trt@champion",
                         "--config", f"repository={s3_repository}")
    out = created.stdout + created.stderr
    assert "trt_engine deployment digits is created" in out
    assert "h100 and h200 share compute capability 9.0" in out  # the choice, explained
    for cls in ("h100", "h200", "l4"):
        assert f"{s3_repository}/{cls}" in out
    keys = _keys(servers, s3_repository)
    assert sorted(k for k in keys if k.endswith(".plan")) == [
        "h100/digits/1/model.h100.plan", "h200/digits/1/model.h200.plan",
        "l4/digits/1/model.l4.plan"]
    h100 = _config(servers, s3_repository, "h100", "digits")
    assert h100.platform == "tensorrt_plan" and dict(h100.cc_model_filenames) == {
        "9.0": "model.h100.plan"}
    assert list(h100.version_policy.specific.versions) == [1]

    got = mlflow_cli(cli_env, "deployments", "get", "-t", f"triton:{s3_repository}",
                     "--name", "digits").stdout
    assert "model_uri: models:/digits-trt/1" in got
    assert "requested_uri: models:/digits-trt@champion" in got

    listed = deploy_client(servers, f"triton:{s3_repository}").list_deployments()
    assert [(d["name"], d["version"]) for d in listed] == [("digits", "1")]

    # re-running the same deployment is a no-op: nothing is rewritten
    before = {k: servers.s3().head_object(Bucket=servers.bucket, Key=_s3_key(s3_repository, k))
              ["LastModified"] for k in keys}
    again = deploy_client(servers).create_deployment(
        "digits", "models:/digits-trt@champion", config={"repository": s3_repository})
    assert again["version"] == "1"
    assert {k: servers.s3().head_object(Bucket=servers.bucket, Key=_s3_key(s3_repository, k))
            ["LastModified"] for k in _keys(servers, s3_repository)} == before

    # version 2: H200's gate failed; H100 (9.0) and L4 (8.9) share one repository, cc-mapped
    updated = mlflow_cli(cli_env, "deployments", "update", "-t", f"triton:{s3_repository}",
                         "--name", "digits", "-m", "models:/digits-trt/2")
    assert "distinct compute capabilities" in updated.stderr
    keys = _keys(servers, s3_repository)
    assert sorted(k for k in keys if k.startswith("gpu/digits/2/")) == [
        "gpu/digits/2/model.h100.plan", "gpu/digits/2/model.l4.plan"]
    assert not [k for k in keys if k.split("/")[0] in ("h100", "h200", "l4")]  # old ones gone
    gpu = _config(servers, s3_repository, "gpu", "digits")
    assert dict(gpu.cc_model_filenames) == {"9.0": "model.h100.plan", "8.9": "model.l4.plan"}
    record = json.loads(_read(servers, s3_repository, "gpu/digits/mlflow-meta.json"))
    assert record["model_uri"] == "models:/digits-trt/2"
    assert any(n.startswith("h200/fp16: gate failed") for n in record["not_deployed"])
    assert record["gates"]["all_gates_passed"] == "false"
    assert {e["name"]: e["sha256"] for e in record["engines"]}.keys() == {"h100-fp16", "l4-fp16"}

    mlflow_cli(cli_env, "deployments", "delete", "-t", f"triton:{s3_repository}",
               "--name", "digits")
    assert _keys(servers, s3_repository) == []
    deploy_client(servers, f"triton:{s3_repository}").delete_deployment("digits")  # idempotent


def _s3_key(root: str, key: str) -> str:
    return f"{root.split('/', 3)[3]}/{key}"


def test_failed_gate_for_the_requested_class_is_refused(trt_versions, servers, cli_env,
                                                        s3_repository):
    proc = mlflow_cli(cli_env, "deployments", "create", "-t", "triton", "--name", "d",
                      "-m", "models:/digits-trt/2", "--config", f"repository={s3_repository}",
                      "--config", "targets=h200", check=False)
    assert proc.returncode != 0
    assert "h200: its gate failed" in proc.stderr and "top1_agreement 0.9 < 0.99" in proc.stderr
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert _keys(servers, s3_repository) == []


def test_unknown_target_class_is_refused(trt_versions, servers, s3_repository):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        deploy_client(servers).create_deployment(
            "d", "models:/digits-trt@champion",
            config={"repository": s3_repository, "targets": "h100,b200"})
    assert "b200: unknown target class" in err.value.message
    assert _keys(servers, s3_repository) == []


def test_corrupted_engine_is_refused_before_anything_is_written(digits_run, servers,
                                                                s3_repository):
    import yaml
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tests.serving.conftest import placeholder_attempt, register

    info = register(digits_run, servers, "digits-trt-corrupt",
                    [placeholder_attempt(digits_run, "l4")]).info
    client = MlflowClient(servers.tracking_uri)
    model_id = client.get_model_version(info["model_name"], info["version"]).source[len("models:/"):]
    prefix = client.get_logged_model(model_id).artifact_location.split(f"{servers.bucket}/", 1)[1]
    s3 = servers.s3()
    conf = yaml.safe_load(s3.get_object(Bucket=servers.bucket, Key=f"{prefix}/MLmodel")["Body"]
                          .read())["flavors"]["trt_engine"]["engines"][0]
    s3.put_object(Bucket=servers.bucket, Key=f"{prefix}/{conf['path']}", Body=b"tampered plan")

    with pytest.raises(MlflowException) as err:
        deploy_client(servers).create_deployment(
            "d", info["model_uri"], config={"repository": s3_repository})
    text = err.value.message
    assert "engine l4-fp16" in text and "is corrupt" in text and conf["sha256"] in text
    assert "nothing was written" in text and "fix:" in text
    assert _keys(servers, s3_repository) == []


def test_a_version_not_gated_by_trt_ops_is_refused(digits_version, servers, s3_repository):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # the same engines registered by hand, without the register stage's gate tags
    client = MlflowClient(servers.tracking_uri)
    mv = client.get_model_version("digits-serve", digits_version.info["version"])
    client.create_registered_model("digits-ungated")
    copy = client.create_model_version("digits-ungated", mv.source, run_id=mv.run_id,
                                       model_id=mv.source[len("models:/"):])
    with pytest.raises(MlflowException) as err:
        deploy_client(servers).create_deployment(
            "d", f"models:/digits-ungated/{copy.version}", config={"repository": s3_repository})
    assert "carries no gate verdicts" in err.value.message


def test_bad_requests_name_the_fix(servers, cli_env):
    from mlflow.exceptions import MlflowException

    client = deploy_client(servers)
    with pytest.raises(MlflowException, match="no Triton repository given"):
        client.list_deployments()
    with pytest.raises(MlflowException, match="not a registered model version"):
        client.create_deployment("d", "runs:/abc/model", config={"repository": "/tmp/x"})
    with pytest.raises(MlflowException, match="invalid deployment config: colour"):
        client.create_deployment("d", "models:/x/1", config={"repository": "/tmp/x",
                                                             "colour": "red"})
    helptext = mlflow_cli(cli_env, "deployments", "help", "-t", "triton").stdout
    assert "cc_model_filenames" in helptext and "instance_count" in helptext
