"""The stage operators: declared templated fields, rendering from the DAG's params, thin
constructors, and the worker-identity check of a mis-routed build."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.airflow.conftest import load_dag_module

OPERATORS = {
    "ExportOnnxOperator": {"source", "inputs", "output_names", "tolerance"},
    "CheckDataOperator": {"calibration_data", "validation_data", "inputs", "ranges",
                          "min_samples", "classes"},
    "CalibrateOperator": {"export", "calibration_data", "inputs", "precision", "backend",
                          "samples", "method"},
    "BuildEngineOperator": {"calibrated", "target", "profile", "options"},
    "ValidateEngineOperator": {"engine", "export", "validation_data", "inputs", "task",
                               "thresholds"},
    "BenchmarkEngineOperator": {"engine", "export", "inputs", "batch_sizes", "iterations",
                                "warmup", "streams"},
    "RegisterEnginesOperator": {"model_name", "export", "builds", "validations", "benchmarks",
                                "calibrations", "promote"},
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_template_fields(name: str) -> None:
    cls = getattr(importlib.import_module("trt_ops.operators"), name)
    assert cls.template_fields == tuple(sorted(OPERATORS[name] | {"store"}))


def test_provider_lists_every_operator_module() -> None:
    from trt_ops.provider_info import get_provider_info

    modules = get_provider_info()["operators"][0]["python-modules"]
    for module in modules:
        importlib.import_module(module)
    assert len(modules) == len(OPERATORS)


def test_templated_fields_render_from_the_dags_params(airflow_db: Path) -> None:
    dag = load_dag_module().dag
    params = {k: p.value for k, p in dag.params.items()}
    params.update(store="s3://engines/digits", model_weights="s3://models/digits/model.pt",
                  precisions=["int8"], thresholds={"int8": {"top1_agreement": 0.97}})
    context = {"params": params, "run_id": "r1", "ds": "2025-01-01"}

    export = dag.get_task("export")
    export.render_template_fields(context)
    assert export.store == "s3://engines/digits"
    assert export.source == {"factory": "trt_ops.examples.digits:build_model",
                             "state_dict": "s3://models/digits/model.pt"}
    assert export.inputs == [{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert export.output_names == ["logits"]  # a list, not its text: native rendering

    check = dag.get_task("check_data")
    check.render_template_fields(context)
    assert check.calibration_data == params["calibration_data"]
    assert check.inputs == export.inputs


def test_validate_thresholds_per_precision_over_the_defaults() -> None:
    from trt_ops.operators.validate import thresholds_for
    from trt_ops.spec import DEFAULT_THRESHOLDS

    per_precision = {"int8": {"top1_agreement": 0.97}, "fp16": {"min_cosine": 0.9}}
    assert thresholds_for(per_precision, "int8") == {**DEFAULT_THRESHOLDS["int8"], "top1_agreement": 0.97}
    assert thresholds_for({"top1_agreement": 0.5}, "fp16")["top1_agreement"] == 0.5
    assert thresholds_for("{'int8': {'min_cosine': 0.5}}", "int8")["min_cosine"] == 0.5


def test_constructors_only_store_arguments(tmp_path: Path) -> None:
    """No I/O at construction: a store and data that do not exist yet are fine until execute."""
    from trt_ops.operators import BuildEngineOperator, CheckDataOperator

    CheckDataOperator(task_id="c", store=str(tmp_path / "nowhere"), inputs="{{ params.x }}",
                      calibration_data="s3://missing/c.npz", validation_data="s3://missing/v.npz")
    BuildEngineOperator(task_id="b", store="s3://missing-bucket/x", calibrated={}, target="h100",
                        profile={})
    assert not (tmp_path / "nowhere").exists()


def _calibrated(digits_run):
    key = next(k for k in digits_run.calibrations if k.endswith("/onnxruntime"))
    return digits_run.calibrations[key]


def _build(digits_run, digits_dir: Path, target: str):
    from trt_ops.operators import BuildEngineOperator
    from trt_ops.spec import load_spec

    spec = load_spec(digits_dir / "pipeline.yaml")
    return BuildEngineOperator(task_id="build", store=spec.store, target=target,
                               calibrated=_calibrated(digits_run).to_dict(), profile=spec.profile())


def _mismatch(call) -> str:
    """Runs ``call``; it must fail without retry, caused by the identity error. Its message."""
    from airflow.sdk.exceptions import AirflowFailException

    from trt_ops.errors import TargetMismatchError

    with pytest.raises(AirflowFailException) as err:
        call()
    assert isinstance(err.value.__cause__, TargetMismatchError)
    return str(err.value)


def _engine_dirs(store: Path) -> set[str]:
    return {p.name for p in (store / "build").iterdir()} if (store / "build").is_dir() else set()


def test_build_on_a_worker_of_another_cpu_class_fails_before_work(digits_run, digits_dir) -> None:
    """Real check: this machine's CPU is not the class the task was routed for."""
    from trt_ops.hardware import host_info
    from trt_ops.targets import load_catalog

    here = host_info().cpu_isa
    wrong = next(t for t in load_catalog().values() if t.cpu_isa and t.cpu_isa != here)
    store = Path(digits_dir / "store")
    before = _engine_dirs(store)
    message = _mismatch(lambda: _build(digits_run, digits_dir, wrong.name).execute({}))
    assert wrong.cpu_isa in message and here in message and host_info().hostname in message
    assert f"queue {wrong.queue!r}" in message
    assert _engine_dirs(store) == before


def test_validate_of_another_class_engine_fails_before_work(digits_run, digits_dir) -> None:
    """Real check of this worker; the engine's manifest is relabelled to another class (no
    engine of that class can be built here)."""
    from trt_ops.hardware import host_info
    from trt_ops.operators import ValidateEngineOperator
    from trt_ops.spec import load_spec
    from trt_ops.targets import load_catalog

    here = host_info().cpu_isa
    wrong = next(t for t in load_catalog().values() if t.cpu_isa and t.cpu_isa != here)
    engine = digits_run.attempts[0].build.to_dict()
    engine["spec"] = {**engine["spec"], "target": wrong.name}
    spec = load_spec(digits_dir / "pipeline.yaml")
    store = Path(digits_dir / "store")
    before = {p.name for p in (store / "validate").iterdir()}
    op = ValidateEngineOperator(task_id="validate", store=spec.store, engine=engine,
                                export=digits_run.export.to_dict(), inputs=[i.to_dict() for i in spec.model.inputs],
                                validation_data="does-not-matter.npz")
    assert wrong.cpu_isa in _mismatch(lambda: op.execute({}))
    assert {p.name for p in (store / "validate").iterdir()} == before


def test_build_for_a_gpu_class_on_a_worker_without_that_gpu_fails(digits_run, digits_dir) -> None:
    """Real check: this worker has no GPU (or another one) than the GPU class needs."""
    from trt_ops.hardware import host_info
    from trt_ops.targets import load_catalog

    gpus = [g.product for g in host_info().gpus]
    wrong = next(t for t in load_catalog().values() if t.is_gpu and t.gpu_product not in gpus)
    message = _mismatch(lambda: _build(digits_run, digits_dir, wrong.name).execute({}))
    assert repr(wrong.gpu_product) in message
    assert ("has no NVIDIA GPU" in message) if not gpus else (repr(gpus[0]) in message)


def test_gpu_worker_with_another_gpu_is_refused_simulated_host() -> None:
    """Simulated: no GPU here, so an L4 worker is described by a HostInfo, not detected."""
    from trt_ops.errors import TargetMismatchError
    from trt_ops.hardware import GpuInfo, HostInfo, check_target
    from trt_ops.targets import get_target

    l4_worker = HostInfo("gpu-l4-0", "x86_64-avx2", "test CPU", (GpuInfo("NVIDIA L4", "8.9"),))
    with pytest.raises(TargetMismatchError, match=r"needs GPU 'NVIDIA H100 80GB HBM3'.*'gpu-l4-0' has 'NVIDIA L4'"):
        check_target(get_target("h100"), l4_worker)
    assert check_target(get_target("l4"), l4_worker) is l4_worker
