"""Idempotent stages: an output found under its key is returned instead of recomputed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from trt_ops.store import ArtifactStore
from trt_ops.store.manifest import Manifest

log = logging.getLogger("trt_ops")


def manifest_key(stage: str, key: str) -> str:
    return f"{stage}/{key}/manifest.json"


def run_cached(store: ArtifactStore, stage: str, key: str,
               compute: Callable[[], Manifest]) -> Manifest:
    """Returns the stored manifest for (stage, key), or computes, stores and returns it.

    The manifest is written last, after every artifact it names: its presence is what marks
    the output complete, so an interrupted stage leaves nothing that looks finished.
    """
    found = store.read_json(manifest_key(stage, key))
    if found is not None:
        manifest = Manifest.from_dict(found)
        manifest.cache_hit = True
        log.info("%s: cache hit %s", stage, key)
        return manifest
    start = time.perf_counter()
    manifest = compute()
    manifest.seconds = round(time.perf_counter() - start, 3)
    manifest.cache_hit = False
    store.put_json(manifest_key(stage, key), manifest.to_dict())
    return manifest
