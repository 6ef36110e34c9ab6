"""The builder's timing cache, shared through the artifact store per GPU product and TensorRT version.

TensorRT times candidate kernels (tactics) for every layer it builds; the timing cache keeps the
results, so the next build on the same GPU type and TensorRT version, of any model, skips the
timing it has already done. A cache is only valid for the GPU and version that made it, hence
one per (GPU product, TensorRT version)::

    timing-caches/<gpu-product>/trt-<version>/current.json     {"uri", "sha256", "size"}
    timing-caches/<gpu-product>/trt-<version>/<sha256>.cache   immutable cache blobs

Loading goes through :meth:`ArtifactStore.fetch`, so a damaged cache is caught by its sha256 and
never handed to TensorRT. Saving is a merge: right before committing, the stored cache is read
again and combined with ours (``ITimingCache.combine``), so tactics that another build stored in
the meantime are kept. Blobs are written once under their digest and the pointer write is atomic,
so a reader sees one whole cache or the previous one, never a torn one. If another build
commits between our re-read and our commit we notice and merge again. The store offers no
compare-and-swap, so two commits landing within the same instant can still drop the newer
tactics of one of them (never the stored cache, never a corrupt one); the next build re-times
those layers.

The combine step is a parameter (bytes, bytes -> bytes) so that this module needs no TensorRT.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable

from trt_ops.errors import IntegrityError, StoreError
from trt_ops.store import ArtifactStore
from trt_ops.store.digest import sha256_bytes
from trt_ops.store.manifest import Artifact

log = logging.getLogger(__name__)

ROOT = "timing-caches"

# combine(stored, ours) -> one cache holding the tactics of both
Combine = Callable[[bytes, bytes], bytes]


def slug(text: str) -> str:
    """A key-safe form of a product or version string: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


@dataclasses.dataclass
class TimingCacheStore:
    """The stored timing cache of one (GPU product, TensorRT version)."""

    store: ArtifactStore
    gpu_product: str
    trt_version: str
    rounds: int = 3  # merge-and-commit attempts while other builds keep committing

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{slug(self.gpu_product)}/trt-{slug(self.trt_version)}"

    @property
    def pointer_key(self) -> str:
        return f"{self.prefix}/current.json"

    def _head(self) -> Artifact | None:
        pointer = self.store.read_json(self.pointer_key)
        return Artifact.from_dict(pointer) if pointer else None

    def _fetch(self, head: Artifact) -> bytes | None:
        try:
            return self.store.fetch_bytes(head)
        except (IntegrityError, StoreError) as exc:
            # a cache only saves time: build without it, and the next save replaces it
            log.warning("ignoring the stored timing cache %s: %s", head.uri, exc)
            return None

    def load(self) -> bytes | None:
        """The stored cache's bytes, or None when there is none (or it is unreadable)."""
        head = self._head()
        return None if head is None else self._fetch(head)

    def save(self, ours: bytes, combine: Combine) -> Artifact:
        """Merges ``ours`` into the stored cache and commits the result; returns what is stored."""
        merged = ours
        for attempt in range(self.rounds):
            head = self._head()
            stored = None if head is None else self._fetch(head)
            if stored is not None:
                merged = combine(stored, merged)
            if head is not None and stored is not None and sha256_bytes(merged) == head.sha256:
                return head  # nothing new: leave the stored cache as it is
            blob = self.store.put_bytes(f"{self.prefix}/{sha256_bytes(merged)}.cache", merged)
            now = self._head()
            if attempt == self.rounds - 1 or _digest(now) == _digest(head):
                self.store.put_json(self.pointer_key, blob.to_dict())
                return blob
            log.info("another build saved the timing cache meanwhile; merging again")
        raise AssertionError("unreachable: the last round always commits")


def _digest(artifact: Artifact | None) -> str | None:
    return None if artifact is None else artifact.sha256
