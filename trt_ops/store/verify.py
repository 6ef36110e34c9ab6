"""``trt-ops verify``: every object that the manifests of a store (or one manifest) name, checked.

Each object is checked once, however many manifests name it: present, of the recorded size, and
of the recorded sha256 (streamed, never held in memory). A manifest naming an object outside the
store is a failure too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

from trt_ops.errors import StoreError
from trt_ops.store.base import ArtifactStore
from trt_ops.store.manifest import Artifact

MANIFEST_NAMES = ("manifest.json", "summary.json")


@dataclasses.dataclass
class Checked:
    uri: str
    size: int
    named_by: list[str]
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclasses.dataclass
class Report:
    store: str
    manifests: int
    objects: list[Checked]
    seconds: float

    @property
    def failures(self) -> list[Checked]:
        return [c for c in self.objects if not c.ok]

    def rows(self) -> list[dict[str, str]]:
        return [{"status": "OK" if c.ok else "FAILED", "object": c.uri, "bytes": str(c.size),
                 "problem": c.problem or "", "named by": ", ".join(c.named_by[:2]) +
                 (f" (+{len(c.named_by) - 2})" if len(c.named_by) > 2 else "")}
                for c in self.objects]


def artifacts_in(obj: Any, where: str = "") -> Iterator[tuple[str, Artifact]]:
    """Every ``{uri, sha256, size}`` record in a manifest (stage, run summary or registry)."""
    if isinstance(obj, dict):
        if {"uri", "sha256", "size"} <= obj.keys() and isinstance(obj["uri"], str):
            yield where, Artifact.from_dict(obj)
            return
        for k, v in obj.items():
            yield from artifacts_in(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from artifacts_in(v, f"{where}[{i}]")


def store_manifests(store: ArtifactStore, run: str | None = None) -> dict[str, Any]:
    """The store's manifests by key: every stage's and registered version's, or one run's."""
    if run:
        key = f"runs/{run}/summary.json"
        found = store.read_json(key)
        if found is None:
            raise StoreError(f"run {run} has no summary in {store.uri} ({key})",
                             "pass a run id listed under runs/ in the store (a run that was "
                             "interrupted has only run.yaml)")
        return {key: found}
    keys = [k for k in store.list_keys() if k.rsplit("/", 1)[-1] == "manifest.json"
            and not k.startswith("runs/")]
    return {k: store.read_json(k) for k in keys}


def verify(store: ArtifactStore, manifests: dict[str, Any], *, full: bool = True) -> Report:
    """Checks each object named by ``manifests`` (name -> parsed JSON) once."""
    start = time.perf_counter()
    by_uri: dict[str, Checked] = {}
    for name, manifest in manifests.items():
        for _, art in artifacts_in(manifest):
            checked = by_uri.get(art.uri)
            if checked is None:
                try:
                    shown = store.uri_key(art.uri)
                except StoreError:
                    shown = art.uri
                checked = by_uri[art.uri] = Checked(shown, art.size, [name])
                try:
                    checked.problem = store.check(art, sha256=full)
                except StoreError as exc:  # outside the store, or the store unreachable
                    checked.problem = exc.problem
            elif name not in checked.named_by:
                checked.named_by.append(name)
    return Report(store.uri, len(manifests), sorted(by_uri.values(), key=lambda c: c.uri),
                  round(time.perf_counter() - start, 3))


def read_manifest_file(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read manifest {path}: {exc}",
                         "pass a manifest JSON (a stage's -o file, or a manifest.json or "
                         "summary.json from the store)") from exc
