"""Model weights by URI: a worker with no copy of the file loads them from S3 (moto over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trt_ops.errors import ModelSourceError
from trt_ops.models.sources import load_model, source_digest
from trt_ops.store.digest import sha256_file

FACTORY = "trt_ops.examples.digits:build_model"


def test_state_dict_from_s3_loads_the_same_weights(servers, digits_dir: Path) -> None:
    local = digits_dir / "model.pt"
    key = "inputs/digits/model.pt"
    servers.s3().upload_file(str(local), servers.bucket, key)
    uri = f"s3://{servers.bucket}/{key}"

    model = load_model({"factory": FACTORY, "state_dict": uri})
    expected = torch.load(local, weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    # the same bytes are the same source, wherever they are read from
    assert source_digest({"factory": FACTORY, "state_dict": uri}) == \
        source_digest({"factory": FACTORY, "state_dict": local.as_uri()}) == \
        f"{FACTORY}|sd:{sha256_file(local)}"


def test_a_missing_s3_object_is_named(servers) -> None:
    uri = f"s3://{servers.bucket}/inputs/nowhere/model.pt"
    with pytest.raises(ModelSourceError, match=r"(?s)model file s3://.*/nowhere/model.pt does not "
                                               r"exist.*must be uploaded first"):
        load_model({"factory": FACTORY, "state_dict": uri})


def test_the_reference_comes_from_the_store_not_the_spec_paths(digits_copy: Path) -> None:
    """A GPU worker sees the store, not the exporting worker's disk: once exported, the PyTorch
    reference loads with the source weights gone."""
    from trt_ops.models.reference import load_reference
    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec
    from trt_ops.store import open_store

    spec = load_spec(digits_copy / "pipeline.yaml")
    store = open_store(spec.store)
    export = steps.export_step(spec, store)
    expected = torch.load(digits_copy / "model.pt", weights_only=True)
    (digits_copy / "model.pt").unlink()

    assert export.artifact("reference_weights").uri.startswith(store.uri)
    model = load_reference(export, store)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
