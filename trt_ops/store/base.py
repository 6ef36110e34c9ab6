"""Artifact stores: ``file://`` directories and ``s3://`` buckets, content verified on read.

Objects are written under keys derived from the digests of their inputs (see
:func:`trt_ops.store.digest.cache_key`), first to a temporary name and then committed, so a reader
never sees a partial object. Every read checks the sha256 recorded in the manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from trt_ops.errors import IntegrityError
from trt_ops.store.digest import sha256_file
from trt_ops.store.manifest import Artifact

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

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys of the objects under ``prefix`` (relative to the store's root), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object under ``key``; a missing object is not an error."""

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
