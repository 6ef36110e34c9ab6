"""The trt_engine flavor on its own: save, pick the local engine, portable fallback, refusals."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _engines(run: Any, cpu_isa: str | None = None) -> list[dict[str, Any]]:
    from trt_ops.store import open_store

    store = open_store(run.store)
    out = []
    for a in run.engines:
        meta = copy.deepcopy(a.build.info["metadata"])
        if cpu_isa:  # engines of another CPU class: none of them runs here
            meta["hardware"]["cpu_isa"] = cpu_isa
        out.append({"name": f"{a.target}-{a.precision}", "target": a.target, "metadata": meta,
                    "path": str(store.fetch(a.build.artifact("engine"))),
                    "uri": a.build.artifact("engine").uri})
    return out


def _onnx(run: Any) -> Path:
    from trt_ops.store import open_store

    return open_store(run.store).fetch(run.export.artifact("onnx"))


@pytest.fixture(scope="module")
def images(digits_dir: Path) -> np.ndarray:
    return np.load(digits_dir / "validation.npz")["image"][:40].astype(np.float32)


def test_mlmodel_lists_engines_and_loader_picks_one_for_this_machine(digits_run, tmp_path, images):
    import mlflow.pyfunc
    from mlflow.models import Model

    import mlflow_plugins.trt_engine as flavor

    path = tmp_path / "model"
    flavor.save_model(_engines(digits_run), str(path), _onnx(digits_run))
    conf = Model.load(path).flavors[flavor.FLAVOR_NAME]
    assert [e["precision"] for e in conf["engines"]] == [a.precision for a in digits_run.engines]
    assert conf["allow_portable_fallback"] is True
    assert conf["inputs"] == [{"name": "image", "dtype": "float32", "shape": [-1, 1, 8, 8]}]
    fp16 = mlflow.pyfunc.load_model(str(path), model_config={"precision": "fp16"})
    assert fp16.get_raw_model().engine["precision"] == "fp16"
    out = fp16.predict({"image": images})["logits"]
    direct = flavor.load_model(str(path), precision="fp16").predict(images)["logits"]
    np.testing.assert_allclose(out, direct)


def test_no_matching_engine_falls_back_to_portable_onnx(digits_run, tmp_path, images, caplog):
    import mlflow.pyfunc
    import onnxruntime as ort

    import mlflow_plugins.trt_engine as flavor

    path = tmp_path / "model"
    flavor.save_model(_engines(digits_run, cpu_isa="aarch64-sve2"), str(path), _onnx(digits_run))
    model = mlflow.pyfunc.load_model(str(path))
    assert model.get_raw_model().engine is None
    assert "portable ONNX" in caplog.text
    expected = ort.InferenceSession(str(_onnx(digits_run))).run(None, {"image": images})[0]
    np.testing.assert_allclose(model.predict({"image": images})["logits"], expected, rtol=1e-5,
                               atol=1e-5)


def test_no_matching_engine_without_fallback_lists_offers_and_machine(digits_run, tmp_path,
                                                                    local_class):
    import mlflow.pyfunc

    import mlflow_plugins.trt_engine as flavor
    from trt_ops.errors import EngineError
    from trt_ops.targets.host import host_info

    path = tmp_path / "model"
    flavor.save_model(_engines(digits_run, cpu_isa="aarch64-sve2"), str(path), _onnx(digits_run),
                      allow_portable_fallback=False)
    with pytest.raises(EngineError) as err:
        mlflow.pyfunc.load_model(str(path))
    text = str(err.value)
    assert f"{local_class}-int8 (onnxruntime" in text and "aarch64-sve2" in text
    assert f"This machine: CPU {host_info().cpu_isa}" in text and "fix:" in text


def test_save_refuses_an_engine_whose_bytes_do_not_match(digits_run, tmp_path):
    import mlflow_plugins.trt_engine as flavor
    from trt_ops.errors import IntegrityError

    engines = _engines(digits_run)
    bad = tmp_path / "engine.onnx"
    bad.write_bytes(Path(engines[0]["path"]).read_bytes() + b"\0")
    engines[0]["path"] = str(bad)
    with pytest.raises(IntegrityError, match="metadata records"):
        flavor.save_model(engines, str(tmp_path / "model"), _onnx(digits_run))
    assert not (tmp_path / "model").exists()  # nothing half-saved


def test_wrong_input_type_names_accepted_types(digits_run, tmp_path):
    import mlflow_plugins.trt_engine as flavor

    flavor.save_model(_engines(digits_run), str(tmp_path / "m"), _onnx(digits_run))
    with pytest.raises(TypeError, match="dict of input name -> array"):
        flavor.load_model(str(tmp_path / "m")).predict("not an array")
