"""``s3://`` stores: an S3 bucket or any S3-compatible server, spoken to with boto3."""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trt_ops.errors import IntegrityError, StoreError
from trt_ops.store.base import ArtifactStore
from trt_ops.store.digest import sha256_bytes

META_SHA256 = "sha256"

# Who makes the S3 client of stores opened without one (data, model files and specs by URI):
# an Airflow task sets its ``aws`` connection here for the task's duration.
_client_factory: contextvars.ContextVar[Callable[[], Any] | None] = contextvars.ContextVar(
    "trt_ops_s3_client_factory", default=None)


@contextlib.contextmanager
def client_scope(factory: Callable[[], Any]) -> Iterator[None]:
    """Every S3 object read or written in the block without a client of its own goes through
    ``factory()``'s client; nothing outlives the block."""
    token = _client_factory.set(factory)
    try:
        yield
    finally:
        _client_factory.reset(token)


class S3Store(ArtifactStore):
    """An S3 bucket (or any S3-compatible server) under ``s3://bucket/prefix``.

    ``endpoint_url`` (or boto3's ``AWS_ENDPOINT_URL``) selects an S3-compatible server.
    """

    def __init__(self, uri: str, client: Any = None, endpoint_url: str | None = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"not an S3 URI: {uri!r}", "write it as s3://bucket/optional/prefix")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client
        self._endpoint_url = endpoint_url or os.environ.get("TRT_OPS_S3_ENDPOINT_URL")

    @property
    def client(self) -> Any:
        if self._client is None and (factory := _client_factory.get()) is not None:
            self._client = factory()
        if self._client is None:
            import boto3
            from botocore.config import Config

            # fail in seconds, not minutes, when the endpoint is down
            config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 2})
            self._client = boto3.client("s3", endpoint_url=self._endpoint_url, config=config)
        return self._client

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(what) from exc
            if code == "NoSuchBucket":
                raise StoreError(
                    f"S3 bucket {self.bucket!r} does not exist ({what})",
                    "create the bucket first, or point the store at an existing one",
                ) from exc
            raise StoreError(f"S3 refused {what}: {exc}", "check the credentials and bucket policy") from exc
        except BotoCoreError as exc:
            endpoint = self.client.meta.endpoint_url
            raise StoreError(
                f"S3 endpoint {endpoint} is unreachable ({what}): {exc}",
                "check that the server is up and that endpoint_url / AWS_ENDPOINT_URL and the "
                "network allow it",
            ) from exc

    def _put(self, key: str, src: Path, sha256: str) -> str:
        final = self._object_key(key)
        tmp = f"{self.prefix}/.tmp/{uuid.uuid4().hex}".lstrip("/")
        with open(src, "rb") as body:
            self._call(f"upload of {final}", self.client.put_object, Bucket=self.bucket,
                       Key=tmp, Body=body, Metadata={META_SHA256: sha256})
        try:
            # S3-compatible servers do not all check ChecksumSHA256: verify the bytes ourselves
            # before the object appears under its final key
            obj = self._call(f"read-back of {tmp}", self.client.get_object, Bucket=self.bucket, Key=tmp)
            found = sha256_bytes(obj["Body"].read())
            if found != sha256:
                raise IntegrityError(
                    f"upload of {final} arrived corrupt (sha256 {found}, expected {sha256})",
                    "retry the task; if it persists, check the S3 server or proxy",
                )
            self._call(f"commit of {final}", self.client.copy_object, Bucket=self.bucket,
                       Key=final, CopySource={"Bucket": self.bucket, "Key": tmp},
                       Metadata={META_SHA256: sha256}, MetadataDirective="REPLACE")
        finally:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=tmp)
            except Exception:  # best effort: a stray temp object is invisible to readers
                pass
        return self.key_uri(key)

    def _exists(self, key: str) -> bool:
        try:
            self._call(f"lookup of {key}", self.client.head_object, Bucket=self.bucket,
                       Key=self._object_key(key))
            return True
        except FileNotFoundError:
            return False

    def _read(self, key: str) -> bytes | None:
        try:
            obj = self._call(f"read of {key}", self.client.get_object, Bucket=self.bucket,
                             Key=self._object_key(key))
        except FileNotFoundError:
            return None
        return obj["Body"].read()

    def list_keys(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(f"listing of {self.key_uri(prefix)}", lambda: list(paginator.paginate(
            Bucket=self.bucket, Prefix=root + prefix)))
        keys = [o["Key"][len(root):] for page in pages for o in page.get("Contents", [])]
        return sorted(k for k in keys if not k.startswith(".tmp/"))

    def delete(self, key: str) -> None:
        self._call(f"deletion of {self.key_uri(key)}", self.client.delete_object,
                   Bucket=self.bucket, Key=self._object_key(key))

    def _download(self, uri: str, dest: Path) -> None:
        parsed = urlparse(uri)
        try:
            obj = self._call(f"download of {uri}", self.client.get_object, Bucket=parsed.netloc,
                             Key=parsed.path.lstrip("/"))
        except FileNotFoundError:
            raise StoreError(f"{uri} does not exist", "re-run the stage that produces it") from None
        with open(dest, "wb") as f:
            shutil.copyfileobj(obj["Body"], f)
