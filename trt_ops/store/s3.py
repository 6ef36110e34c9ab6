"""``s3://`` stores: an S3 bucket or any S3-compatible server, spoken to with boto3.

Uploads, copies and downloads are boto3 managed transfers (multipart for large objects), and
digests are computed while streaming: models over 2 GB go through without being held in memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trt_ops.errors import IntegrityError, StoreError
from trt_ops.store.base import ArtifactStore

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

    def __init__(self, uri: str, client: Any = None, endpoint_url: str | None = None,
                 multipart_bytes: int = 64 * 1024**2) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StoreError(f"not an S3 URI: {uri!r}", "write it as s3://bucket/optional/prefix")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client
        self.multipart_bytes = multipart_bytes
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
        from boto3.exceptions import S3UploadFailedError
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
        except S3UploadFailedError as exc:  # a managed upload's failure, whatever the cause
            raise StoreError(
                f"S3 upload failed ({what}): {exc}",
                "check that the S3 server is up and reachable and retry; nothing was committed",
            ) from exc
        except BotoCoreError as exc:
            endpoint = self.client.meta.endpoint_url
            raise StoreError(
                f"S3 endpoint {endpoint} is unreachable ({what}): {exc}",
                "check that the server is up and that endpoint_url / AWS_ENDPOINT_URL and the "
                "network allow it",
            ) from exc

    def _transfer(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        # managed transfers: multipart above the threshold (no 5 GB single-PUT limit), a few
        # parts in flight, so memory stays at a few chunks whatever the object's size
        return TransferConfig(multipart_threshold=self.multipart_bytes,
                              multipart_chunksize=self.multipart_bytes, max_concurrency=4)

    def _put(self, key: str, src: Path, sha256: str) -> str:
        final = self._object_key(key)
        tmp = f"{self.prefix}/.tmp/{uuid.uuid4().hex}".lstrip("/")
        try:
            self._call(f"upload of {final}", self.client.upload_file, Filename=str(src),
                       Bucket=self.bucket, Key=tmp, Config=self._transfer(),
                       ExtraArgs={"Metadata": {META_SHA256: sha256}})
            # S3-compatible servers do not all check checksums: verify the bytes ourselves,
            # streamed, before the object appears under its final key
            found = self._stream_sha256(tmp)
            if found != sha256:
                raise IntegrityError(
                    f"upload of {final} arrived corrupt (sha256 {found}, expected {sha256})",
                    "retry the task; if it persists, check the S3 server or proxy",
                )
            # managed copy: a multipart copy above the threshold, so no 5 GB limit either
            self._call(f"commit of {final}", self.client.copy,
                       CopySource={"Bucket": self.bucket, "Key": tmp}, Bucket=self.bucket,
                       Key=final, Config=self._transfer(),
                       ExtraArgs={"Metadata": {META_SHA256: sha256},
                                  "MetadataDirective": "REPLACE"})
        finally:
            # best effort: a stray temp object is invisible to readers
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=tmp)
        return self.key_uri(key)

    def _stream_sha256(self, object_key: str) -> str:
        obj = self._call(f"read of s3://{self.bucket}/{object_key}", self.client.get_object,
                         Bucket=self.bucket, Key=object_key)
        h = hashlib.sha256()
        try:
            for chunk in obj["Body"].iter_chunks(1 << 20):
                h.update(chunk)
        except Exception as exc:  # a dropped connection mid-body
            raise StoreError(f"reading s3://{self.bucket}/{object_key} failed: {exc}",
                             "check that the S3 server is up and retry") from exc
        return h.hexdigest()

    def _size(self, key: str) -> int | None:
        try:
            head = self._call(f"lookup of {self.key_uri(key)}", self.client.head_object,
                              Bucket=self.bucket, Key=self._object_key(key))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    def _sha256(self, key: str) -> str:
        return self._stream_sha256(self._object_key(key))

    def _uri_key(self, uri: str) -> str | None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            return None
        key = parsed.path.lstrip("/")
        if not self.prefix:
            return key
        return key[len(self.prefix) + 1:] if key.startswith(self.prefix + "/") else None

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

    def _download(self, key: str, dest: Path) -> None:
        uri = self.key_uri(key)
        try:
            # managed download: ranged GETs streamed to the file, never the whole object in memory
            self._call(f"download of {uri}", self.client.download_file, Bucket=self.bucket,
                       Key=self._object_key(key), Filename=str(dest), Config=self._transfer())
        except FileNotFoundError:
            raise StoreError(f"{uri} does not exist", "re-run the stage that produces it") from None
