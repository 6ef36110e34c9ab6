"""Where data files come from: local paths, ``file://`` and ``s3://`` URIs."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

from trt_ops.errors import DataError


def local_data_path(uri: str | Path) -> Path:
    """A local file holding the data at ``uri``; s3 objects are downloaded once into the cache."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(parsed.netloc + parsed.path if parsed.netloc else parsed.path)
    if parsed.scheme != "s3":
        return Path(text)
    from trt_ops.store import S3Store, blob_cache_dir

    store = S3Store(f"s3://{parsed.netloc}")
    key = parsed.path.lstrip("/")
    try:
        head = store._call(f"lookup of {text}", store.client.head_object, Bucket=store.bucket, Key=key)
    except FileNotFoundError:
        raise DataError(f"data object {text} does not exist",
                        "upload it first, or fix the data URI in the spec") from None
    # the ETag changes with the content, so a re-uploaded file is fetched again
    tag = hashlib.sha256(f"{text}\0{head.get('ETag', '')}".encode()).hexdigest()[:24]
    dest = blob_cache_dir() / "data" / tag / Path(key).name  # keeps the suffix the reader needs
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            store._download(key, tmp)  # a managed, multipart-aware download
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest




def existing_data_file(uri: str | Path) -> Path:
    """:func:`local_data_path`, checked to be a readable file (not missing, not a folder)."""
    p = local_data_path(uri)
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise DataError(f"data file {p} {what}",
                        "check the data paths in the spec (relative paths are relative to it)")
    return p
