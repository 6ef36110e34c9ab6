"""A worker that shares only S3 with the others: the spec, data and weights come by ``s3://``
URI, and every S3 call of the task goes through the ``aws`` connection (moto over HTTP); the
process environment holds no S3 endpoint or key, before or after."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from tests.servers import digits_on_s3
from trt_ops.errors import TrtOpsError

S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
          "AWS_ENDPOINT_URL_S3", "TRT_OPS_S3_ENDPOINT_URL")


@pytest.fixture
def spec_on_s3(servers, digits_dir: Path) -> str:
    """The digits example's files and spec uploaded under a prefix of their own."""
    prefix = f"inputs/{uuid.uuid4().hex[:8]}"
    doc = digits_on_s3(servers, digits_dir, prefix)
    servers.s3().put_object(Bucket=servers.bucket, Key=f"{prefix}/pipeline.yaml", Body=yaml.safe_dump(doc))
    return f"s3://{servers.bucket}/{prefix}/pipeline.yaml"


@pytest.fixture
def only_the_connection(servers, monkeypatch: pytest.MonkeyPatch) -> str:
    """No S3 endpoint or credentials in the environment; an ``aws`` connection holds them."""
    for var in S3_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SHARED_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": servers.s3_endpoint, "region_name": "us-east-1"}}))
    return "shared_s3"


def test_tasks_read_spec_data_and_weights_through_the_aws_connection(
        spec_on_s3: str, only_the_connection: str, servers) -> None:
    from trt_ops.operators.check_data import CheckDataOperator
    from trt_ops.operators.export import ExportOnnxOperator
    from trt_ops.store.s3 import _client_factory

    checked = CheckDataOperator(task_id="check_data", spec=spec_on_s3,
                                aws_conn_id=only_the_connection).execute({})
    exported = ExportOnnxOperator(task_id="export", spec=spec_on_s3,
                                  aws_conn_id=only_the_connection).execute({})
    assert checked["status"] == exported["status"] == "OK"
    # the outputs are in the bucket, where another worker finds them
    prefix = spec_on_s3.removeprefix(f"s3://{servers.bucket}/").rsplit("/", 1)[0]
    keys = {o["Key"] for o in servers.s3().list_objects_v2(
        Bucket=servers.bucket, Prefix=f"{prefix}/store/export/")["Contents"]}
    assert {k.rsplit("/", 1)[1] for k in keys} >= {"model.onnx", "reference.pt"}
    # nothing of the connection outlives the task
    assert _client_factory.get() is None
    assert not {v for v in S3_ENV if v in __import__("os").environ}


def test_without_the_connection_the_same_task_cannot_reach_s3(
        spec_on_s3: str, only_the_connection: str) -> None:
    """The control: the environment alone has no way to S3, so the connection did the work."""
    from trt_ops.operators.check_data import CheckDataOperator

    with pytest.raises(TrtOpsError, match=r"(?s)spec .*pipeline.yaml|S3"):
        CheckDataOperator(task_id="check_data", spec=spec_on_s3, aws_conn_id=None).execute({})
