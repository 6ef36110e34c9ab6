"""Idempotent stages: an output found under its key is returned instead of recomputed.

A cache hit is earned: every object the stored manifest names must be in the store with the
recorded size, and with the recorded sha256 where that is cheap (objects up to
:data:`HASH_LIMIT`) or asked for (``TRT_OPS_VERIFY=full``, ``trt-ops run --verify``). A missing
or damaged object is recomputed, with a warning naming it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from trt_ops.errors import StoreError
from trt_ops.store import ArtifactStore
from trt_ops.store.manifest import Manifest

log = logging.getLogger("trt_ops")

HASH_LIMIT = 64 * 1024**2  # objects up to this size are hashed on every cache hit
VERIFY_ENV = "TRT_OPS_VERIFY"  # "full": hash every object of every cache hit


def full_verify() -> bool:
    return os.environ.get(VERIFY_ENV, "").lower() in ("full", "1", "true", "yes")


def manifest_key(stage: str, key: str) -> str:
    return f"{stage}/{key}/manifest.json"


def damaged(store: ArtifactStore, manifest: Manifest, *, full: bool | None = None) -> list[str]:
    """``name (uri): problem`` for each artifact of ``manifest`` that is not as recorded."""
    full = full_verify() if full is None else full
    problems = []
    for name, art in sorted(manifest.artifacts.items()):
        problem = store.check(art, sha256=full or art.size <= HASH_LIMIT)
        if problem:
            problems.append(f"{name} ({art.uri}): {problem}")
    return problems


def run_cached(store: ArtifactStore, stage: str, key: str,
               compute: Callable[[], Manifest]) -> Manifest:
    """Returns the stored manifest for (stage, key), or computes, stores and returns it.

    The manifest is written last, after every artifact it names is stored and checked: its
    presence is what marks the output complete, so an interrupted stage leaves nothing that
    looks finished.
    """
    found = store.read_json(manifest_key(stage, key))
    if found is not None:
        manifest = Manifest.from_dict(found)
        problems = damaged(store, manifest)
        if not problems:
            manifest.cache_hit = True
            log.info("%s: cache hit %s", stage, key)
            return manifest
        log.warning("%s: the stored output %s is damaged, computing it again: %s", stage, key,
                    "; ".join(problems))
    start = time.perf_counter()
    manifest = compute()
    manifest.seconds = round(time.perf_counter() - start, 3)
    manifest.cache_hit = False
    problems = damaged(store, manifest, full=False)
    if problems:  # never a manifest naming what is not there
        raise StoreError(f"{stage}: the objects just written are not in the store as recorded: "
                         f"{'; '.join(problems)}",
                         "check the store's health (disk, bucket policy, lifecycle rules) and "
                         "run the stage again; no manifest was written")
    store.put_json(manifest_key(stage, key), manifest.to_dict())
    return manifest
