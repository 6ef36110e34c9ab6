"""sha256 digests and the cache keys derived from them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(stage: str, **parts: Any) -> str:
    """Key of a stage's output: same stage, input digests and spec give the same key."""
    return hashlib.sha256(canonical_json({"stage": stage, **parts}).encode()).hexdigest()[:24]
