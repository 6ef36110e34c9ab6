"""``file://`` stores: a directory on a local or mounted file system."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from trt_ops.errors import StoreError
from trt_ops.store.base import ArtifactStore
from trt_ops.store.digest import sha256_file


class FileStore(ArtifactStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / key

    def key_uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _uri_key(self, uri: str) -> str | None:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            return None
        # resolved, so that neither ../ nor a symlink leads out of the root
        path = Path(unquote(parsed.path)).resolve()
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else None

    def _size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def _sha256(self, key: str) -> str:
        return sha256_file(self._path(key))

    def _put(self, key: str, src: Path, sha256: str) -> str:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StoreError(
                f"cannot write {dest}: {exc.strerror or exc}",
                f"make sure {self.root} exists and is writable, or point the store elsewhere",
            ) from exc
        return dest.as_uri()

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _read(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.endswith(".tmp"))

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # empty folders left behind would look like (broken) entries to readers of the tree
        for parent in path.parents:
            if parent == self.root or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()

    def _download(self, key: str, dest: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise StoreError(f"{src.as_uri()} does not exist", "re-run the stage that produces it")
        shutil.copyfile(src, dest)
