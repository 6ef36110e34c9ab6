"""Export stage: a checked ONNX with a dynamic batch axis that matches PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from trt_ops.errors import ExportError, ModelSourceError, OnnxModelError
from trt_ops.models.onnx import check_onnx, local_onnx
from trt_ops.spec import InputSpec
from trt_ops.stages.export import export_onnx
from trt_ops.store import open_store

X = (InputSpec(name="x", shape=[1, 4]),)


def test_export_matches_pytorch_with_dynamic_batch(tmp_path):
    store = open_store(tmp_path)
    m = export_onnx({"factory": "tests.core.models:tiny"}, X, store, output_names=["y"])
    assert m.info["exporter"] == "dynamo" and m.info["output_names"] == ["y"]
    assert m.metrics["parity"]["y"]["max_abs_error"] < 1e-5
    path = store.fetch(m.artifact("onnx"))
    graph = onnx.load(str(path))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    got = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    from tests.core.models import tiny

    np.testing.assert_allclose(got, tiny()(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_second_export_is_a_cache_hit(tmp_path):
    store = open_store(tmp_path)
    first = export_onnx({"factory": "tests.core.models:tiny"}, X, store)
    second = export_onnx({"factory": "tests.core.models:tiny"}, X, store)
    assert not first.cache_hit and second.cache_hit
    assert second.artifact("onnx") == first.artifact("onnx")
    other = export_onnx({"factory": "tests.core.models:tiny", "kwargs": {"hidden": 16}}, X, store)
    assert not other.cache_hit and other.key != first.key


def test_state_dict_and_pt2_program_sources(tmp_path):
    from tests.core.models import tiny

    sd = tmp_path / "w.pt"
    torch.save(tiny().state_dict(), sd)
    store = open_store(tmp_path / "s")
    m = export_onnx({"factory": "tests.core.models:tiny", "state_dict": str(sd)}, X, store)
    assert m.metrics["parity"]
    pt2 = tmp_path / "tiny.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(tiny(), (torch.randn(2, 4),),
                                          dynamic_shapes=({0: batch},)), str(pt2))
    p = export_onnx({"program": str(pt2)}, X, store)
    assert max(e["max_abs_error"] for e in p.metrics["parity"].values()) < 1e-5
    static = tmp_path / "static.pt2"
    torch.export.save(torch.export.export(tiny(), (torch.randn(2, 4),)), str(static))
    with pytest.raises(ExportError, match=r"fails on inputs of shapes \{'x': \[3, 4\]\}") as e:
        export_onnx({"program": str(static)}, X, store)
    assert "Dim('batch')" in e.value.fix


def test_factory_that_does_not_import(tmp_path):
    with pytest.raises(ModelSourceError, match="cannot import module 'no_such_pkg.models'") as e:
        export_onnx({"factory": "no_such_pkg.models:build"}, X, open_store(tmp_path))
    assert "install the package" in e.value.fix
    with pytest.raises(ModelSourceError, match="not of the form module:function"):
        export_onnx({"factory": "tests.core.models.tiny"}, X, open_store(tmp_path))
    with pytest.raises(ModelSourceError, match="returned str"):
        export_onnx({"factory": "tests.core.models:not_a_module"}, X, open_store(tmp_path))
    assert not list(tmp_path.rglob("*.onnx"))


def test_state_dict_that_does_not_fit(tmp_path):
    from tests.core.models import tiny

    sd = tmp_path / "w.pt"
    torch.save(tiny(hidden=16).state_dict(), sd)
    with pytest.raises(ModelSourceError, match="does not fit the model") as e:
        export_onnx({"factory": "tests.core.models:tiny", "state_dict": str(sd)}, X,
                    open_store(tmp_path / "s"))
    assert "size mismatch" in e.value.problem
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").rglob("*.onnx"))


def test_op_the_exporters_cannot_handle(tmp_path):
    store = open_store(tmp_path)
    with pytest.warns(UserWarning, match="falling back to the TorchScript exporter"), \
            pytest.raises(ExportError, match="neither ONNX exporter") as e:
        export_onnx({"factory": "tests.core.models:eigen"}, (InputSpec(name="x", shape=[1, 4, 4]),), store)
    assert "linalg_eigvals" in e.value.problem
    assert not list(tmp_path.rglob("*.onnx"))


def test_parity_failure_above_tolerance(tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx({"factory": "tests.core.models:noisy"}, X, open_store(tmp_path))
    assert not list(tmp_path.rglob("manifest.json"))


def test_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(OnnxModelError, match="model.onnx is not a valid ONNX model") as e:
        check_onnx(bad)
    assert "real .onnx file" in e.value.fix


def test_external_data_for_large_models(tmp_path):
    """The 2 GB threshold lowered so a tiny model takes the external-data path."""
    store = open_store(tmp_path)
    m = export_onnx({"factory": "tests.core.models:tiny"}, X, store, external_data_threshold=1)
    assert "onnx_data" in m.artifacts and m.info["external_data"]
    path = local_onnx(m, store)
    assert (path.parent / m.info["external_data"]).is_file()
    x = np.ones((2, 4), np.float32)
    assert ort.InferenceSession(str(path)).run(None, {"x": x})[0].shape == (2, 3)
