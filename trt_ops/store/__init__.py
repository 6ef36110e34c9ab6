"""The artifact store and what stages keep in it: objects by URI, manifests, digests, the cache.

Stages read their inputs from, and write their outputs to, a store URI (``s3://bucket/prefix``,
``file:///dir`` or a directory), never a local path that a later task needs:

- :mod:`.base` the store interface; :mod:`.local` and :mod:`.s3` its two kinds;
- :mod:`.manifest` the small JSON records stages return (an Airflow task's XCom value);
- :mod:`.digest` sha256 digests and the cache keys derived from them;
- :mod:`.cache` idempotent stages: an output found under its key is a cache hit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trt_ops.errors import StoreError
from trt_ops.store.base import ArtifactStore, blob_cache_dir
from trt_ops.store.local import FileStore
from trt_ops.store.s3 import S3Store

__all__ = ["ArtifactStore", "FileStore", "S3Store", "blob_cache_dir", "open_store"]


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
