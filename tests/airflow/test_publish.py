"""PublishTritonOperator: the spec's serving section and the register task's version, turned into
a call of the ``triton`` deployments client (which tests/serving exercises against real servers)."""

from __future__ import annotations

import json
from unittest import mock

import pytest

DESCRIBED = {"name": "digits-cnn", "model_uri": "models:/digits-cnn/3", "version": "3",
             "repositories": {"gpu": "s3://serving/triton/gpu"}, "not_deployed": [],
             "layout": ["one repository, 'gpu'"]}
SPEC = {"name": "digits-cnn",
        "model": {"factory": "trt_ops.examples.digits:build_model",
                  "inputs": [{"name": "image", "shape": [1, 1, 8, 8]}]},
        "data": {"calibration": "/data/c.npz", "validation": "/data/v.npz"},
        "store": "/data/store",
        "registry": {"model_name": "digits-cnn", "tracking_uri": "sqlite:////data/mlflow.db"},
        "serving": {"triton_repository": "s3://serving/triton", "options": {"instance_count": 2}}}


def _registered(*aliases: str) -> dict:
    return {"stage": "register", "key": "k", "info": {
        "model_name": "digits-cnn", "version": "3", "model_uri": "models:/digits-cnn/3",
        "aliases": list(aliases)}}


def _operator(spec: dict | None = None, registered: dict | None = None, **kwargs):
    from trt_ops.operators.publish import PublishTritonOperator

    return PublishTritonOperator(task_id="publish", spec=spec or SPEC,
                                 registered=registered or _registered("candidate", "champion"),
                                 mlflow_conn_id="mlflow_test", aws_conn_id="serving_s3", **kwargs)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps(
        {"conn_type": "mlflow", "host": "http://mlflow:5000", "extra": {"registry_uri": ""}}))
    monkeypatch.setenv("AIRFLOW_CONN_SERVING_S3", json.dumps(
        {"conn_type": "aws", "extra": {"endpoint_url": "http://s3:9000"}}))


def test_creates_the_champion_deployment_when_absent(connections) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from mlflow_plugins.triton.deployments import TritonDeploymentClient

    missing = MlflowException("no deployment", error_code=RESOURCE_DOES_NOT_EXIST)
    with mock.patch.object(TritonDeploymentClient, "get_deployment", side_effect=missing), \
            mock.patch.object(TritonDeploymentClient, "create_deployment",
                              return_value=DESCRIBED) as create, \
            mock.patch.object(TritonDeploymentClient, "__init__", return_value=None) as init:
        op = _operator()
        xcom = op.execute({})
    create.assert_called_once_with("digits-cnn", "models:/digits-cnn@champion",
                                   config={"instance_count": 2})
    target, = init.call_args.args
    assert target == "triton:s3://serving/triton"
    # the mlflow connection wins over the spec's tracking URI; S3 through the aws connection
    assert init.call_args.kwargs["tracking_uri"] == "http://mlflow:5000"
    assert init.call_args.kwargs["open_store"] == op.hook.open
    assert op.hook.aws_conn_id == "serving_s3"
    assert xcom["status"] == "OK"
    assert xcom["info"]["repositories"] == DESCRIBED["repositories"]
    json.dumps(xcom)  # XCom-able


def test_a_repository_given_to_the_task_wins_over_the_spec(connections) -> None:
    from mlflow_plugins.triton.deployments import TritonDeploymentClient

    without = {**SPEC, "serving": {"options": {}}}  # the spec names none
    with mock.patch.object(TritonDeploymentClient, "get_deployment", return_value={}), \
            mock.patch.object(TritonDeploymentClient, "update_deployment",
                              return_value=DESCRIBED) as update, \
            mock.patch.object(TritonDeploymentClient, "__init__", return_value=None) as init:
        xcom = _operator(spec=without, repository="s3://other/triton").execute({})
    assert init.call_args.args == ("triton:s3://other/triton",)
    update.assert_called_once()
    assert xcom["status"] == "OK"


def test_updates_an_existing_deployment(connections) -> None:
    from mlflow_plugins.triton.deployments import TritonDeploymentClient

    with mock.patch.object(TritonDeploymentClient, "get_deployment", return_value=DESCRIBED), \
            mock.patch.object(TritonDeploymentClient, "update_deployment",
                              return_value=DESCRIBED) as update, \
            mock.patch.object(TritonDeploymentClient, "create_deployment") as create:
        _operator().execute({})
    update.assert_called_once_with("digits-cnn", "models:/digits-cnn@champion",
                                   config={"instance_count": 2})
    create.assert_not_called()


def test_other_errors_are_not_swallowed(connections) -> None:
    from mlflow.exceptions import MlflowException

    from mlflow_plugins.triton.deployments import TritonDeploymentClient

    with mock.patch.object(TritonDeploymentClient, "get_deployment",
                           side_effect=MlflowException("S3 endpoint unreachable")), \
            mock.patch.object(TritonDeploymentClient, "create_deployment") as create, \
            pytest.raises(MlflowException, match="unreachable"):
        _operator().execute({})
    create.assert_not_called()


@pytest.mark.parametrize("spec, registered, reason", [
    ({**SPEC, "serving": {}}, _registered("candidate", "champion"),
     "serving.triton_repository is empty"),
    (SPEC, _registered("candidate"), r"does not hold the alias .champion. \(its aliases: candidate\)"),
])
def test_the_task_skips_without_a_repository_or_a_champion(connections, spec, registered,
                                                           reason) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from mlflow_plugins.triton.deployments import TritonDeploymentClient

    with mock.patch.object(TritonDeploymentClient, "create_deployment") as create, \
            pytest.raises(AirflowSkipException, match=reason):
        _operator(spec, registered).execute({})
    create.assert_not_called()
