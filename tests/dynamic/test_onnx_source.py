"""An ONNX model as the source: checked against the spec and stored, the reference itself;
local, or on S3 with its external data; refused with a clear error when it does not fit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.dynamic.conftest import DIMS, INPUTS, encoder_spec
from trt_ops.errors import OnnxModelError
from trt_ops.models.onnx import local_onnx
from trt_ops.spec import InputSpec
from trt_ops.stages.export import export_onnx
from trt_ops.store import open_store
from trt_ops.store.digest import sha256_file

SPECS = [InputSpec(**i) for i in INPUTS]


def test_an_onnx_source_runs_the_pipeline_as_its_own_reference(encoder_dir, encoder_onnx,
                                                                tmp_path):
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    for name in ("calibration.npz", "validation.npz"):
        shutil.copyfile(encoder_dir / name, tmp_path / name)
    spec = load_spec(encoder_spec(tmp_path, model__factory=None, model__onnx=str(encoder_onnx),
                                  model__outputs=["embedding"],
                                  benchmark__dims={"sequence": [8]}))
    summary = run_pipeline(spec)
    export = summary.export
    assert export.info["exporter"] == "onnx source"
    assert export.info["output_names"] == ["embedding", "scores"]  # named first: the primary
    assert export.artifact("onnx").sha256 == sha256_file(encoder_onnx)  # stored as it is
    [attempt] = summary.attempts
    assert attempt.verdict == "PASSED", attempt.reason
    assert attempt.validation.info["primary_output"] == "embedding"
    rows = attempt.benchmark.info["rows"]
    assert {r["reference_kind"] for r in rows} == {"onnxruntime fp32 (source ONNX)"}
    assert all(r["reference"]["throughput"] > 0 and "torch_compile" not in r for r in rows)


def test_an_onnx_source_on_s3_with_external_data(encoder_onnx, s3_bucket, tmp_path):
    import boto3

    model = onnx.load(str(encoder_onnx))
    local = tmp_path / "model.onnx"
    onnx.save_model(model, str(local), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    bucket = s3_bucket.removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3", endpoint_url=os.environ["TRT_OPS_S3_ENDPOINT_URL"])
    for name in ("model.onnx", "weights.bin"):
        s3.upload_file(str(tmp_path / name), bucket, f"models/{name}")
    store = open_store(tmp_path / "store")
    m = export_onnx({"onnx": f"s3://{bucket}/models/model.onnx"}, SPECS, store, dims=DIMS)
    assert m.info["external_data"] == "model.onnx.data" and "onnx_data" in m.artifacts
    path = local_onnx(m, store)
    ids = np.ones((2, 7), np.int64)
    out = ort.InferenceSession(str(path)).run(["embedding"], {"input_ids": ids,
                                                             "attention_mask": ids})[0]
    assert out.shape == (2, 32)
    again = export_onnx({"onnx": f"s3://{bucket}/models/model.onnx"}, SPECS, store, dims=DIMS)
    assert again.cache_hit


def _refused(source: Path, tmp_path: Path, inputs=SPECS, outputs=(), dims=DIMS) -> str:
    store = tmp_path / "store"
    with pytest.raises(OnnxModelError) as err:
        export_onnx({"onnx": str(source)}, inputs, open_store(store), output_names=outputs,
                    dims=dims)
    assert not store.exists() or not list(store.rglob("*.onnx"))  # nothing written
    return str(err.value)


def test_a_file_that_is_not_onnx_or_is_truncated(encoder_onnx, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("these are my notes, not a model\n" * 20)
    assert "is not an ONNX model" in _refused(text, tmp_path)
    cut = tmp_path / "cut.onnx"
    data = encoder_onnx.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    assert "truncated" in _refused(cut, tmp_path)
    missing = tmp_path / "missing.onnx"
    assert "does not exist" in _refused(missing, tmp_path)


def test_truncated_or_missing_external_data(encoder_onnx, tmp_path):
    model = onnx.load(str(encoder_onnx))
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:100])
    assert "external data weights.bin is truncated" in _refused(path, tmp_path)
    weights.unlink()
    assert "which is missing" in _refused(path, tmp_path)


def test_inputs_that_do_not_match_the_spec(encoder_onnx, tmp_path):
    renamed = [InputSpec(name="ids", shape=["batch", "sequence"], dtype="int64"), SPECS[1]]
    assert "inputs are ['attention_mask', 'input_ids'], the spec's are" in _refused(
        encoder_onnx, tmp_path, inputs=renamed)
    wrong_dtype = [InputSpec(name="input_ids", shape=["batch", "sequence"], dtype="int32"),
                   SPECS[1]]
    assert "'input_ids' is int64 in the ONNX model, int32 in the spec" in _refused(
        encoder_onnx, tmp_path, inputs=wrong_dtype)
    rank = [InputSpec(name="input_ids", shape=["batch", "sequence", 4], dtype="int64"), SPECS[1]]
    assert "has 2 axes in the ONNX model, 3 in the spec" in _refused(encoder_onnx, tmp_path,
                                                                      inputs=rank)
    fixed = onnx.load(str(encoder_onnx))
    fixed.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 12
    onnx.save(fixed, str(tmp_path / "fixed.onnx"))
    assert "fixed at 12 in the ONNX model, but the spec makes it the dynamic axis 'sequence'" \
        in _refused(tmp_path / "fixed.onnx", tmp_path)


def test_an_output_the_model_does_not_produce(encoder_onnx, tmp_path):
    text = _refused(encoder_onnx, tmp_path, outputs=["embeddings"])
    assert "does not produce outputs ['embeddings']" in text and "'embedding'" in text
