"""The stage operators: declared templated fields, rendering from the DAG's params, thin
constructors, and the worker-identity check of a mis-routed build."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.airflow.conftest import load_dag_module

OPERATORS = {
    "ExportOnnxOperator": set(),
    "CheckDataOperator": set(),
    "CalibrateOperator": {"export", "precision", "backend"},
    "BuildEngineOperator": {"calibrated", "target"},
    "ValidateEngineOperator": {"engine", "export"},
    "BenchmarkEngineOperator": {"engine", "export"},
    "PrecisionFallbackOperator": {"target", "builds", "validations", "export"},
    "RegisterEnginesOperator": {"export", "builds", "validations", "benchmarks", "calibrations",
                                "fallbacks"},
    "PublishTritonOperator": {"registered", "repository"},
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_template_fields(name: str) -> None:
    cls = getattr(importlib.import_module("trt_ops.operators"), name)
    assert cls.template_fields == tuple(sorted(OPERATORS[name] | {"spec"}))


def test_provider_lists_every_operator_module() -> None:
    from trt_ops.provider_info import get_provider_info

    modules = get_provider_info()["operators"][0]["python-modules"]
    for module in modules:
        importlib.import_module(module)
    assert len(modules) == len(OPERATORS)


def test_operators_read_the_spec_as_the_cli_does(digits_dir: Path) -> None:
    """A spec file, its mapping (the plan task's XCom) and its JSON text: one spec."""
    import json

    from trt_ops.operators import ExportOnnxOperator
    from trt_ops.spec import load_spec

    path = digits_dir / "pipeline.yaml"
    expected = load_spec(path)
    mapping = expected.model_dump(mode="json")
    for given in (str(path), mapping, json.dumps(mapping)):
        op = ExportOnnxOperator(task_id="export", spec=given)
        assert op.pipeline_spec == expected
    assert ExportOnnxOperator(task_id="e", spec=mapping).artifact_store().uri == \
        (digits_dir / "store").as_uri()


def test_every_dag_task_gets_the_plans_spec(airflow_db: Path) -> None:
    dag = load_dag_module().dag
    for task_id in ("check_data", "export", "calibrate_onnxruntime", "register", "publish"):
        task = dag.get_task(task_id)
        # a mapped task (calibrate, publish) keeps its fixed arguments in partial_kwargs
        spec = task.partial_kwargs.get("spec") if hasattr(task, "partial_kwargs") else task.spec
        assert getattr(spec, "operator", None) is dag.get_task("plan"), task_id


def test_constructors_only_store_arguments(tmp_path: Path) -> None:
    """No I/O at construction: a spec, store and data that do not exist yet are fine until
    execute."""
    from trt_ops.operators import BuildEngineOperator, CheckDataOperator

    CheckDataOperator(task_id="c", spec=str(tmp_path / "nowhere" / "pipeline.yaml"))
    BuildEngineOperator(task_id="b", spec={"store": "s3://missing-bucket/x"}, calibrated={},
                        target="h100")
    assert not (tmp_path / "nowhere").exists()


def _calibrated(digits_run):
    key = next(k for k in digits_run.calibrations if k.endswith("/onnxruntime"))
    return digits_run.calibrations[key]


def _build(digits_run, digits_dir: Path, target: str):
    from trt_ops.operators import BuildEngineOperator

    return BuildEngineOperator(task_id="build", spec=str(digits_dir / "pipeline.yaml"),
                               target=target, calibrated=_calibrated(digits_run).to_dict())


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
    from trt_ops.targets.catalog import load_catalog
    from trt_ops.targets.host import host_info

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
    from trt_ops.operators import ValidateEngineOperator
    from trt_ops.targets.catalog import load_catalog
    from trt_ops.targets.host import host_info

    here = host_info().cpu_isa
    wrong = next(t for t in load_catalog().values() if t.cpu_isa and t.cpu_isa != here)
    engine = digits_run.attempts[0].build.to_dict()
    engine["spec"] = {**engine["spec"], "target": wrong.name}
    store = Path(digits_dir / "store")
    before = {p.name for p in (store / "validate").iterdir()}
    op = ValidateEngineOperator(task_id="validate", spec=str(digits_dir / "pipeline.yaml"),
                                engine=engine, export=digits_run.export.to_dict())
    assert wrong.cpu_isa in _mismatch(lambda: op.execute({}))
    assert {p.name for p in (store / "validate").iterdir()} == before


def test_build_for_a_gpu_class_on_a_worker_without_that_gpu_fails(digits_run, digits_dir) -> None:
    """Real check: this worker has no GPU (or another one) than the GPU class needs."""
    from trt_ops.targets.catalog import load_catalog
    from trt_ops.targets.host import host_info

    gpus = [g.product for g in host_info().gpus]
    wrong = next(t for t in load_catalog().values() if t.is_gpu and t.gpu_product not in gpus)
    message = _mismatch(lambda: _build(digits_run, digits_dir, wrong.name).execute({}))
    assert repr(wrong.gpu_product) in message
    assert ("has no NVIDIA GPU" in message) if not gpus else (repr(gpus[0]) in message)


def test_gpu_worker_with_another_gpu_is_refused_simulated_host() -> None:
    """Simulated: no GPU here, so an L4 worker is described by a HostInfo, not detected."""
    from trt_ops.errors import TargetMismatchError
    from trt_ops.targets.catalog import get_target
    from trt_ops.targets.host import GpuInfo, HostInfo, check_target

    l4_worker = HostInfo("gpu-l4-0", "x86_64-avx2", "test CPU", (GpuInfo("NVIDIA L4", "8.9"),))
    with pytest.raises(TargetMismatchError, match=r"needs GPU 'NVIDIA H100 80GB HBM3'.*'gpu-l4-0' has 'NVIDIA L4'"):
        check_target(get_target("h100"), l4_worker)
    assert check_target(get_target("l4"), l4_worker) is l4_worker
