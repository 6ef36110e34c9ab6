"""The target catalog: hardware classes that each get their own engines.

One YAML file (``trt_ops/targets/hardware_classes.yaml`` by default, or ``$TRT_OPS_TARGETS``) drives
the DAG's per-class fan-out and the Helm chart's worker pools.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from trt_ops.errors import SpecError

DEFAULT_CATALOG = Path(__file__).parent / "hardware_classes.yaml"
BACKENDS = ("onnxruntime", "tensorrt")


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    backend: str
    queue: str
    pool: str
    description: str = ""
    gpu_product: str | None = None
    compute_capability: str | None = None
    cpu_isa: str | None = None
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    pod_override: dict[str, Any] | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpu_product is not None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tolerations"] = list(self.tolerations)
        return d


def _parse(name: str, raw: dict[str, Any], source: Path) -> Target:
    where = f"target class {name!r} in {source}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(Target)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{where} has unknown keys {unknown}", f"allowed keys: {sorted(known)}")
    for required in ("backend", "queue", "pool"):
        if not raw.get(required):
            raise SpecError(f"{where} has no {required!r}", f"add {required}: ... to the class")
    if raw["backend"] not in BACKENDS:
        raise SpecError(f"{where}: unknown backend {raw['backend']!r}", f"use one of {BACKENDS}")
    if raw["backend"] == "tensorrt" and not raw.get("gpu_product"):
        raise SpecError(f"{where}: a tensorrt class needs gpu_product",
                        "add the product string nvidia-smi reports, e.g. 'NVIDIA H100 80GB HBM3'")
    if raw["backend"] == "onnxruntime" and not raw.get("cpu_isa") and not raw.get("gpu_product"):
        raise SpecError(f"{where}: an onnxruntime class needs cpu_isa",
                        "add the ISA level its engines are built for, e.g. x86_64-avx512_vnni "
                        "(`trt-ops targets --local` prints this machine's)")
    fields = dict(raw)
    fields["tolerations"] = tuple(raw.get("tolerations") or ())
    fields["node_selector"] = {str(k): str(v) for k, v in (raw.get("node_selector") or {}).items()}
    if fields.get("compute_capability") is not None:
        fields["compute_capability"] = str(fields["compute_capability"])
    return Target(name=name, **fields)


@lru_cache(maxsize=8)
def _load(path: Path, mtime: float) -> dict[str, Target]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read target catalog {path}: {exc}",
                        "fix the YAML or set TRT_OPS_TARGETS to a valid catalog") from exc
    classes = doc.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise SpecError(f"target catalog {path} has no 'classes' mapping",
                        "see trt_ops/targets/hardware_classes.yaml for the format")
    return {name: _parse(name, raw, path) for name, raw in classes.items()}


def catalog_path() -> Path:
    return Path(os.environ.get("TRT_OPS_TARGETS") or DEFAULT_CATALOG)


def load_catalog(path: str | Path | None = None) -> dict[str, Target]:
    """All target classes of the catalog at ``path`` (default: ``$TRT_OPS_TARGETS`` or built-in)."""
    p = Path(path) if path else catalog_path()
    if not p.is_file():
        raise SpecError(f"target catalog {p} does not exist", "set TRT_OPS_TARGETS to a catalog file")
    return _load(p.resolve(), p.stat().st_mtime)


def get_target(name: str, path: str | Path | None = None) -> Target:
    catalog = load_catalog(path)
    try:
        return catalog[name]
    except KeyError:
        raise SpecError(f"unknown target class {name!r}",
                        f"use one of {sorted(catalog)} or add it to {path or catalog_path()}") from None
