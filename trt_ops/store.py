"""Artifact stores: ``file://`` directories and ``s3://`` buckets, content verified on read.

Objects are written under keys derived from the digests of their inputs (see
:func:`trt_ops.digest.cache_key`), first to a temporary name and then committed, so a reader
never sees a partial object. Every read checks the sha256 recorded in the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trt_ops.digest import sha256_bytes, sha256_file
from trt_ops.errors import IntegrityError, StoreError
from trt_ops.manifest import Artifact

META_SHA256 = "sha256"


def blob_cache_dir() -> Path:
    """Where downloaded objects are kept, by sha256, so a worker fetches each once."""
    root = os.environ.get("TRT_OPS_CACHE_DIR") or Path.home() / ".cache" / "trt-ops"
    path = Path(root) / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class ArtifactStore(ABC):
    """A place for artifacts, addressed by ``key`` relative to the store's root URI."""

    uri: str

    @abstractmethod
    def _put(self, key: str, src: Path, sha256: str) -> str:
        """Atomically store ``src`` under ``key``; returns the object's URI."""

    @abstractmethod
    def _exists(self, key: str) -> bool: ...

    @abstractmethod
    def _read(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _download(self, uri: str, dest: Path) -> None: ...

    @abstractmethod
    def key_uri(self, key: str) -> str: ...

    def put_file(self, key: str, src: str | Path) -> Artifact:
        src = Path(src)
        digest = sha256_file(src)
        uri = self._put(key, src, digest)
        return Artifact(uri=uri, sha256=digest, size=src.stat().st_size)

    def put_bytes(self, key: str, data: bytes) -> Artifact:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(key, tmp.name)
        finally:
            os.unlink(tmp.name)

    def put_json(self, key: str, obj: Any) -> Artifact:
        return self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True).encode())

    def exists(self, key: str) -> bool:
        return self._exists(key)

    def read_json(self, key: str) -> Any | None:
        """The JSON object under ``key``, or None if there is none."""
        data = self._read(key)
        return None if data is None else json.loads(data)

    def fetch(self, artifact: Artifact) -> Path:
        """A local path holding ``artifact``'s bytes, verified against its sha256."""
        cached = blob_cache_dir() / artifact.sha256
        if cached.exists() and sha256_file(cached) == artifact.sha256:
            return cached
        tmp = cached.with_name(f"{cached.name}.{uuid.uuid4().hex}.part")
        try:
            self._download(artifact.uri, tmp)
            found = sha256_file(tmp)
            if found != artifact.sha256:
                raise IntegrityError(
                    f"{artifact.uri} is corrupt: its sha256 is {found}, "
                    f"the manifest recorded {artifact.sha256}",
                    "the object was changed or damaged after it was written; delete it and "
                    "re-run the stage that produced it (its cache entry is then rebuilt)",
                )
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached

    def fetch_bytes(self, artifact: Artifact) -> bytes:
        return self.fetch(artifact).read_bytes()


class FileStore(ArtifactStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / key

    def key_uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _put(self, key: str, src: Path, sha256: str) -> str:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StoreError(
                f"cannot write {dest}: {exc.strerror or exc}",
                f"make sure {self.root} exists and is writable, or point the store elsewhere",
            ) from exc
        return dest.as_uri()

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _read(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def _download(self, uri: str, dest: Path) -> None:
        src = Path(urlparse(uri).path)
        if not src.is_file():
            raise StoreError(f"{uri} does not exist", "re-run the stage that produces it")
        shutil.copyfile(src, dest)


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

    def _download(self, uri: str, dest: Path) -> None:
        parsed = urlparse(uri)
        try:
            obj = self._call(f"download of {uri}", self.client.get_object, Bucket=parsed.netloc,
                             Key=parsed.path.lstrip("/"))
        except FileNotFoundError:
            raise StoreError(f"{uri} does not exist", "re-run the stage that produces it") from None
        with open(dest, "wb") as f:
            shutil.copyfileobj(obj["Body"], f)


def open_store(uri: str | Path, **s3_options: Any) -> ArtifactStore:
    """A store for ``s3://bucket/prefix``, ``file:///abs/dir`` or a plain directory path."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        return S3Store(text, **s3_options)
    if parsed.scheme == "file":
        return FileStore(parsed.netloc + parsed.path if parsed.netloc else parsed.path)
    if parsed.scheme in ("", "c", "d"):
        return FileStore(text)
    raise StoreError(
        f"unsupported artifact store URI {text!r}",
        "use s3://bucket/prefix, file:///absolute/dir, or a directory path",
    )
