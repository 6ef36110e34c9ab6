"""Every DAG in dags/ imports without errors or warnings, and the example DAG's shape: one
task group per catalog class, on the class's queue and pool, fanning in to register."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.airflow.conftest import DAGS, load_dag_module

DAG_FILES = sorted(DAGS.glob("*.py"))


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_without_errors_or_warnings(path: Path, airflow_db: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = load_dag_module(path, f"check_{path.stem}")
    assert not [str(w.message) for w in caught]
    assert module.dag.dag_id == path.stem
    bag = DagBag(dag_folder=str(path), bundle_path=DAGS)
    assert not bag.import_errors
    assert bag.dags


def test_each_catalog_class_gets_build_validate_benchmark_on_its_queue_and_pool() -> None:
    from trt_ops.targets.catalog import load_catalog

    dag = load_dag_module().dag
    for name, target in load_catalog().items():
        for stage in ("build", "validate", "benchmark"):
            task = dag.get_task(f"{name}.{stage}")
            assert (task.queue, task.pool) == (target.queue, target.pool), task.task_id
        assert dag.get_task(f"{name}.build").downstream_task_ids >= {
            f"{name}.validate", f"{name}.benchmark"}
    register = dag.get_task("register")
    assert {f"{n}.benchmark" for n in load_catalog()} <= register.upstream_task_ids
    assert register.trigger_rule == "none_failed_min_one_success"
    assert [a.name for a in register.outlets] == ["trt_ops_registered_engines"]


def test_params_form_offers_the_catalog_and_precisions() -> None:
    from trt_ops.targets.catalog import load_catalog

    params = load_dag_module().dag.params
    schema = params.get_param("targets").schema
    assert schema["items"]["enum"] == sorted(load_catalog())
    assert "int8" in params.get_param("precisions").schema["items"]["enum"]
    for key in ("model_factory", "model_state_dict", "data_calibration", "data_validation",
                "thresholds", "store"):
        assert params.get_param(key).schema.get("title"), key
    assert params.get_param("calibration_method").schema["enum"] == ["entropy", "minmax",
                                                                     "percentile"]
    assert params.get_param("benchmark_iterations").schema.get("exclusiveMinimum") == 0


def _leaf_paths(model: type, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every field of the spec a user sets: fields of the top level and of its sections."""
    from pydantic import BaseModel

    out = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if not prefix and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _leaf_paths(annotation, (name,))
        else:
            out.add((*prefix, name))
    return out


def test_every_spec_field_is_a_param_and_every_param_a_spec_field() -> None:
    from trt_ops.operators.params import SPEC_PARAM, form_fields
    from trt_ops.spec import PipelineSpec

    params = load_dag_module().dag.params
    fields = form_fields()
    assert {path for path, _schema, _section in fields.values()} == _leaf_paths(PipelineSpec)
    assert set(params.keys()) == {*fields, SPEC_PARAM}


def test_changed_form_fields_and_a_spec_file_make_the_runs_spec(digits_dir: Path) -> None:
    from trt_ops.operators.params import spec_from_params

    module = load_dag_module()
    defaults = {k: module.dag.params[k] for k in module.dag.params}
    spec = spec_from_params({**defaults, "precisions": ["fp16"], "data_min_samples": 7},
                            module.DEFAULTS)
    assert spec.precisions == ["fp16"] and spec.data.min_samples == 7
    assert spec.model.factory == "trt_ops.examples.digits:build_model"
    # a spec file as the base: its own values, except the form fields that were changed
    spec = spec_from_params({**defaults, "spec": str(digits_dir / "pipeline.yaml"),
                             "fallback": True}, module.DEFAULTS)
    assert spec.data.calibration == str(digits_dir / "calibration.npz") and spec.fallback


def test_consumer_is_scheduled_on_the_registered_engines_asset() -> None:
    consumer = load_dag_module(DAGS / "trt_engine_consumer.py").dag
    from trt_ops.operators.assets import REGISTERED_ENGINES

    assert list(consumer.timetable.asset_condition.objects) == [REGISTERED_ENGINES]


def test_dag_file_parses_fast() -> None:
    """The DAG file imports no stage modules (torch, onnx, GX) at parse time."""
    import subprocess
    import sys

    code = ("import sys, runpy; import airflow.sdk; runpy.run_path(sys.argv[1]); "
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'great_expectations', 'mlflow', "
            "'trt_ops.stages.export', 'numpy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "trt_engine_pipeline.py")],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    assert out == "[]"


def test_pod_override_needs_the_kubernetes_client() -> None:
    """Without the kubernetes client (Celery deployments), no executor_config is set."""
    import importlib.util

    from trt_ops.targets.catalog import get_target

    module = load_dag_module()
    override = get_target("h100").pod_override
    assert override["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    if importlib.util.find_spec("kubernetes") is None:
        assert module.executor_config(override) is None
        assert not module.dag.get_task("h100.build").partial_kwargs.get("executor_config")
    else:
        pod = module.executor_config(override)["pod_override"]
        assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert pod.spec.containers[0].resources.limits == {"nvidia.com/gpu": 1}
        assert pod.spec.tolerations[0].key == "nvidia.com/gpu"
    assert module.executor_config(None) is None
