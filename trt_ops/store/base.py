"""Artifact stores: ``file://`` directories and ``s3://`` buckets, content verified on read.

Stage outputs are written under keys that hold their sha256 (:meth:`ArtifactStore.put_artifact`),
each first to a temporary name and then committed, so a reader never sees a partial object and
two writers racing the same stage cannot mix their bytes. Every read checks the sha256 recorded
in the manifest, and an object is only read from the store that holds the manifest: a manifest
naming another bucket or a path outside the store root is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from trt_ops.errors import IntegrityError, StoreError
from trt_ops.store.digest import sha256_file
from trt_ops.store.manifest import Artifact

META_SHA256 = "sha256"


def blob_cache_dir() -> Path:
    """Where downloaded objects are kept, by sha256, so a worker fetches each once."""
    root = os.environ.get("TRT_OPS_CACHE_DIR") or Path.home() / ".cache" / "trt-ops"
    path = Path(root) / "blobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(key: str, sha256: str) -> str:
    """``stage/k/name`` -> ``stage/k/<sha256>/name``: the key names the bytes it holds."""
    folder, _, name = key.rpartition("/")
    return f"{folder}/{sha256}/{name}" if folder else f"{sha256}/{name}"


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
    def _download(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def _size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no object under ``key``."""

    @abstractmethod
    def _sha256(self, key: str) -> str:
        """The sha256 of the object under ``key``, computed while streaming it."""

    @abstractmethod
    def key_uri(self, key: str) -> str: ...

    @abstractmethod
    def _uri_key(self, uri: str) -> str | None:
        """The key of ``uri`` in this store, or None when the URI lies outside it."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys of the objects under ``prefix`` (relative to the store's root), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object under ``key``; a missing object is not an error."""

    def uri_key(self, uri: str) -> str:
        """The key of ``uri`` in this store; a clear error when a manifest names anything else."""
        key = self._uri_key(uri)
        parts = key.split("/") if key else []
        if not key or any(p in ("", ".", "..") for p in parts):
            raise StoreError(
                f"the manifest names {uri}, which is outside the artifact store {self.uri}",
                "a manifest may only name objects of its own store: pass the manifest written "
                "by a stage that ran on this store, or point the spec's store at the store "
                "that holds it")
        return key

    def put_file(self, key: str, src: str | Path) -> Artifact:
        src = Path(src)
        digest = sha256_file(src)
        uri = self._put(key, src, digest)
        return Artifact(uri=uri, sha256=digest, size=src.stat().st_size)

    def put_artifact(self, key: str, src: str | Path) -> Artifact:
        """A stage output, stored under ``key`` with its sha256 inserted before the file name.

        The same key can then only ever hold the same bytes, so two processes racing the same
        stage each end with a manifest whose objects match it, whichever manifest lands last.
        """
        src = Path(src)
        digest = sha256_file(src)
        uri = self._put(content_key(key, digest), src, digest)
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

    def check(self, artifact: Artifact, *, sha256: bool = True) -> str | None:
        """What is wrong with the stored ``artifact`` (missing, truncated, changed), or None.

        ``sha256=False`` checks presence and size only (one HEAD or stat); the digest is
        computed while streaming the object, never holding it in memory.
        """
        key = self.uri_key(artifact.uri)
        size = self._size(key)
        if size is None:
            return "missing"
        if size != artifact.size:
            return f"size {size} bytes, the manifest recorded {artifact.size}"
        if sha256:
            found = self._sha256(key)
            if found != artifact.sha256:
                return f"sha256 {found[:12]}..., the manifest recorded {artifact.sha256[:12]}..."
        return None

    def fetch(self, artifact: Artifact) -> Path:
        """A local path holding ``artifact``'s bytes, verified against its sha256."""
        key = self.uri_key(artifact.uri)  # before any cache: a foreign URI is refused outright
        cached = blob_cache_dir() / artifact.sha256
        if cached.exists() and sha256_file(cached) == artifact.sha256:
            return cached
        tmp = cached.with_name(f"{cached.name}.{uuid.uuid4().hex}.part")
        try:
            self._download(key, tmp)
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
