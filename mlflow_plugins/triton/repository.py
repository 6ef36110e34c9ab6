"""Deployments in a Triton repository root (a folder or ``s3://bucket/prefix``), through one
code path: the trt-ops artifact store, which writes each object under a temporary name, verifies
it and then commits it.

The root holds one Triton model repository per node pool (``<root>/<repository>/``); a
deployment is a model folder in one or more of them::

    <root>/<repository>/<name>/config.pbtxt
    <root>/<repository>/<name>/mlflow-meta.json        the record: registry link, digests, gates
    <root>/<repository>/<name>/<mlflow version>/model.<class>.plan | model.onnx

Engine files are written first, then ``config.pbtxt``, then the record: a model folder with a
record is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_plugins.triton.config import CONFIG_FILE

if TYPE_CHECKING:
    from trt_ops.store import ArtifactStore

META_FILE = "mlflow-meta.json"


class TritonRepository:
    """A repository root and the deployments in it."""

    def __init__(self, uri: str, store: ArtifactStore) -> None:
        self.uri = uri
        self.store = store

    def repository_uri(self, repository: str) -> str:
        return self.store.key_uri(repository)

    def records(self) -> list[dict[str, Any]]:
        """Every model folder's record, in key order."""
        keys = [k for k in self.store.list_keys()
                if k.count("/") == 2 and k.endswith(f"/{META_FILE}")]
        return [r for r in (self.store.read_json(k) for k in keys) if r]

    def deployment(self, name: str) -> list[dict[str, Any]]:
        """The records of deployment ``name`` (one per repository it is in); empty if none."""
        return [r for r in self.records() if r.get("name") == name]

    def complete(self, repository: str, name: str, files: list[str]) -> bool:
        """Whether every one of ``files`` (relative to the model folder) is there."""
        present = set(self.store.list_keys(f"{repository}/{name}/"))
        return all(f"{repository}/{name}/{f}" in present for f in [*files, META_FILE])

    def write_model(self, repository: str, name: str, version: str, engines: dict[str, Path],
                    config_text: str, record: dict[str, Any]) -> None:
        """The model folder: engine files (by file name), then config.pbtxt, then the record."""
        folder = f"{repository}/{name}"
        for filename, path in engines.items():
            self.store.put_file(f"{folder}/{version}/{filename}", path)
        self.store.put_bytes(f"{folder}/{CONFIG_FILE}", config_text.encode())
        self.store.put_json(f"{folder}/{META_FILE}", record)

    def remove_model(self, repository: str, name: str, keep_version: str | None = None) -> None:
        """The model folder (the record first, so a half-removed folder is not listed), or,
        with ``keep_version``, only the other versions' folders."""
        folder = f"{repository}/{name}/"
        keys = self.store.list_keys(folder)
        if keep_version is None:
            keys.sort(key=lambda k: not k.endswith(META_FILE))
        else:
            keys = [k for k in keys if k.count("/") == 3 and k.split("/")[2] != keep_version]
        for key in keys:
            self.store.delete(key)
