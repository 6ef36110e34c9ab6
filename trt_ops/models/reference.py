"""The PyTorch reference of a run: stored by the export stage, loaded from the store anywhere.

A benchmark on a GPU worker compares its engines with the source model in PyTorch. That worker
shares only the artifact store and MLflow with the one that exported, so the reference is taken
from there, never from a path in the spec: a factory's weights as a state_dict beside the ONNX (the
factory's code comes from the worker image), a ``.pt2`` program as it is, a registered model as
the version that export resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.models.sources import load_model
from trt_ops.store import ArtifactStore
from trt_ops.store.manifest import Artifact, Manifest

if TYPE_CHECKING:
    import torch

WEIGHTS, PROGRAM = "reference_weights", "reference_program"


def store_reference(source: dict[str, Any], model: torch.nn.Module, store: ArtifactStore,
                    prefix: str) -> dict[str, Artifact]:
    """The export's artifacts that let any worker rebuild ``model``."""
    import tempfile

    import torch

    from trt_ops.models.sources import local_file

    if source.get("program"):
        return {PROGRAM: store.put_artifact(f"{prefix}/reference.pt2", local_file(source["program"]))}
    if source.get("factory"):
        with tempfile.TemporaryDirectory(prefix="trt-ops-reference-") as scratch:
            path = Path(scratch) / "reference.pt"
            torch.save(model.state_dict(), path)
            return {WEIGHTS: store.put_artifact(f"{prefix}/reference.pt", path)}
    return {}  # a registered model: every worker reaches the registry


def reference_source(source: dict[str, Any]) -> dict[str, Any]:
    """The source as export pins it: a registered alias resolved to its version."""
    if source.get("registered"):
        from trt_ops.models.registered import resolve

        return {**source, "registered": resolve(str(source["registered"]))}
    return source


def load_reference(export: Manifest, store: ArtifactStore) -> torch.nn.Module:
    """The source model in eval mode, from what the export stage stored."""
    source = export.info.get("reference") or export.info["source"]
    if PROGRAM in export.artifacts:
        return load_model({"program": str(store.fetch(export.artifact(PROGRAM)))})
    if WEIGHTS in export.artifacts:
        return load_model({"factory": source["factory"], "kwargs": source.get("kwargs"),
                           "state_dict": str(store.fetch(export.artifact(WEIGHTS)))})
    return load_model(source)
