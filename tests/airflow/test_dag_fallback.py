"""The DAG's precision fallback, as ``trt-ops run`` does it (tests/gx/test_fallback.py): an int8
calibration made inaccurate on purpose fails its gate on the class's worker, fp16 is built on
the same class, and the registered version says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.airflow.conftest import load_dag_module, xcoms
from tests.gx.test_fallback import _tamper_scales


def test_a_failed_int8_gate_builds_fp16_on_the_same_class(
        airflow_db: Path, digits_copy: Path, tmp_path: Path, local_class: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec
    from trt_ops.store import open_store
    from trt_ops.store.cache import manifest_key
    from trt_ops.targets.catalog import get_target

    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)  # the spec's registry
    spec_path = digits_copy / "pipeline.yaml"
    doc = yaml.safe_load(spec_path.read_text())
    doc.update(precisions=["int8"], fallback=True, targets=[local_class],
               benchmark={"batch_sizes": [1], "iterations": 3, "warmup": 1,
                          "torch_compile": False},
               registry={"model_name": "digits-fallback", "tracking_uri": mlflow_uri})
    spec_path.write_text(yaml.safe_dump(doc))

    # the int8 calibration the DAG will find in the store, with its scales 50x too coarse
    spec = load_spec(spec_path)
    store = open_store(spec.store)
    export = steps.export_step(spec, store)
    calib = steps.calibrate_step(spec, store, export, "int8", get_target(local_class).backend)
    onnx_artifact = calib.artifact("onnx")
    tampered = tmp_path / "tampered.onnx"
    assert _tamper_scales(store.fetch(onnx_artifact), tampered, 50.0) > 0
    calib.artifacts["onnx"] = store.put_file(onnx_artifact.uri.split(store.uri + "/")[1], tampered)
    store.put_json(manifest_key("calibrate", calib.key), calib.to_dict())

    run = load_dag_module().dag.test(run_conf={"spec": str(spec_path)})
    assert str(run.state) == "success"

    [exported] = xcoms(run, "export")
    assert (exported["key"], exported["cache_hit"]) == (export.key, True), exported["info"]
    [calibrated] = xcoms(run, f"calibrate_{get_target(local_class).backend}")
    assert (calibrated["key"], calibrated["cache_hit"]) == (calib.key, True)  # the tampered one
    [built] = xcoms(run, f"{local_class}.build")
    assert built["spec"]["precision"] == "int8"
    [validated] = xcoms(run, f"{local_class}.validate")
    assert validated["status"] == "FAIL"
    [fallback] = xcoms(run, f"{local_class}.fallback")
    assert [(a["target"], a["precision"], a["verdict"], a["fallback_from"])
            for a in fallback["attempts"]] == [(local_class, "fp16", "PASSED", "int8")]
    [registered] = xcoms(run, "register")
    info = registered["info"]
    version = MlflowClient(mlflow_uri, mlflow_uri).get_model_version("digits-fallback",
                                                                     str(info["version"]))
    assert version.tags["trt_ops.fallbacks"] == f"{local_class}: int8 failed, fp16 passed"
    assert "min_cosine" in version.tags["trt_ops.failed"]  # why int8 was not registered
