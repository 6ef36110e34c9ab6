"""Artifact stores: content verified on every read, atomic writes, clear errors."""

from __future__ import annotations

import boto3
import pytest

from trt_ops.errors import IntegrityError, StoreError
from trt_ops.store import FileStore, S3Store, open_store


def test_file_store_round_trip_and_digest(tmp_path):
    store = open_store(tmp_path / "store")
    art = store.put_bytes("a/b.bin", b"engine bytes")
    assert art.uri == (tmp_path / "store" / "a" / "b.bin").as_uri()
    assert store.fetch(art).read_bytes() == b"engine bytes"
    assert store.exists("a/b.bin") and not store.exists("a/c.bin")
    assert not [p for p in (tmp_path / "store" / "a").iterdir() if p.name.endswith(".tmp")]


def test_file_store_refuses_corrupt_object(tmp_path):
    store = FileStore(tmp_path)
    art = store.put_bytes("engine.onnx", b"good")
    (tmp_path / "engine.onnx").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="engine.onnx is corrupt") as exc:
        store.fetch(art)
    assert art.sha256 in str(exc.value)


def test_s3_store_over_http(s3_bucket, s3_endpoint):
    store = open_store(s3_bucket)
    assert isinstance(store, S3Store)
    art = store.put_bytes("build/k/engine.onnx", b"\x00" * 1000)
    assert art.uri == f"{s3_bucket}/build/k/engine.onnx"
    assert store.fetch(art).read_bytes() == b"\x00" * 1000
    store.put_json("build/k/manifest.json", {"a": 1})
    assert store.read_json("build/k/manifest.json") == {"a": 1}
    assert store.read_json("build/missing.json") is None
    # the sha256 travels in the object's metadata; no temporary object is left behind
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = store.bucket
    head = client.head_object(Bucket=bucket, Key="trt-ops/build/k/engine.onnx")
    assert head["Metadata"]["sha256"] == art.sha256
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert not [k for k in keys if "/.tmp/" in k]


def test_s3_store_refuses_corrupt_object(s3_bucket, s3_endpoint):
    store = open_store(s3_bucket)
    art = store.put_bytes("engine.plan", b"real engine")
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=store.bucket, Key="trt-ops/engine.plan", Body=b"tampered!!!")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.fetch(art)


def test_unreachable_s3_names_endpoint_and_fix(monkeypatch):
    from tests.core.conftest import free_port

    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    port = free_port()  # nothing listens there
    store = S3Store("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(StoreError) as exc:
        store.put_bytes("x", b"data")
    assert f"127.0.0.1:{port}" in exc.value.problem and "unreachable" in exc.value.problem
    assert "endpoint_url" in exc.value.fix


def test_missing_bucket_is_named(s3_bucket):
    store = open_store("s3://no-such-bucket-here/x")
    with pytest.raises(StoreError, match="no-such-bucket-here.*does not exist"):
        store.put_bytes("k", b"v")


def test_unsupported_uri_scheme():
    with pytest.raises(StoreError, match="unsupported artifact store URI"):
        open_store("gs://bucket/x")


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_list_and_delete(kind, tmp_path, request):
    """Both kinds list keys relative to the root, sorted, and delete idempotently."""
    store = open_store(tmp_path / "store" if kind == "file" else request.getfixturevalue("s3_bucket"))
    for key in ("repo/h100/m/1/model.plan", "repo/h100/m/config.pbtxt", "repo/l4/m/config.pbtxt",
                "other/x.json"):
        store.put_bytes(key, b"x")
    assert store.list_keys("repo/h100/") == ["repo/h100/m/1/model.plan", "repo/h100/m/config.pbtxt"]
    assert store.list_keys("nothing/") == []
    store.delete("repo/h100/m/1/model.plan")
    store.delete("repo/h100/m/1/model.plan")  # already gone: not an error
    assert store.list_keys("repo/") == ["repo/h100/m/config.pbtxt", "repo/l4/m/config.pbtxt"]
    if kind == "file":  # no empty folder is left where the object was
        assert not (tmp_path / "store" / "repo" / "h100" / "m" / "1").exists()
