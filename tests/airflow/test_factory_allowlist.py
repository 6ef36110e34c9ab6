"""A DAG run may call only the model factories the deployment allows ([trt_ops]
allowed_factories): anything else fails the plan task and every operator, without retry and
before the factory's module is imported. The CLI, a local user's own tool, is not limited."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.airflow.conftest import load_dag_module

OPTION_ENV = "AIRFLOW__TRT_OPS__ALLOWED_FACTORIES"


@pytest.fixture
def untrusted_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A factory in a module that leaves a marker file when it is imported."""
    marker = tmp_path / "imported.txt"
    (tmp_path / "untrusted_models.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "untrusted_models", raising=False)
    return "untrusted_models:make", marker


def _spec(digits_dir: Path, factory: str, tmp_path: Path) -> dict:
    from trt_ops.spec import load_spec

    doc = load_spec(digits_dir / "pipeline.yaml").model_dump(mode="json", exclude_unset=True)
    doc["model"] = {"factory": factory, "inputs": doc["model"]["inputs"], "outputs": ["logits"]}
    doc["store"] = str(tmp_path / "store")
    return doc


def _refusal(call) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    from trt_ops.errors import ModelSourceError

    with pytest.raises(AirflowFailException) as err:
        call()
    assert isinstance(err.value.__cause__, ModelSourceError)
    return str(err.value)


def test_operator_refuses_a_factory_outside_the_allow_list(digits_dir, untrusted_factory,
                                                           tmp_path, monkeypatch):
    from trt_ops.operators import ExportOnnxOperator

    factory, marker = untrusted_factory
    monkeypatch.delenv(OPTION_ENV, raising=False)
    op = ExportOnnxOperator(task_id="export", spec=_spec(digits_dir, factory, tmp_path))
    message = _refusal(lambda: op.execute({}))
    assert f"model factory '{factory}' is not allowed" in message
    assert "[trt_ops] allowed_factories" in message and OPTION_ENV in message
    assert f"trt_ops.examples.*,{factory}" in message  # the line to write, ready to paste
    assert not marker.exists()  # refused before its module was imported
    assert not (tmp_path / "store").exists()


def test_plan_task_refuses_a_factory_outside_the_allow_list(airflow_db, untrusted_factory,
                                                            monkeypatch):
    factory, marker = untrusted_factory
    monkeypatch.setenv(OPTION_ENV, "trt_ops.examples.*, mypkg.models:make")
    plan = load_dag_module().dag.get_task("plan")
    message = _refusal(lambda: plan.python_callable(params={"model_factory": factory}))
    assert "allowed: trt_ops.examples.*, mypkg.models:make" in message
    assert not marker.exists()


def test_a_listed_factory_is_imported_and_used(digits_dir, untrusted_factory, tmp_path,
                                               monkeypatch):
    from trt_ops.operators import ExportOnnxOperator

    factory, marker = untrusted_factory
    monkeypatch.setenv(OPTION_ENV, "trt_ops.examples.*,untrusted_*:make")
    op = ExportOnnxOperator(task_id="export", spec=_spec(digits_dir, factory, tmp_path))
    result = op.execute({})
    assert result["info"]["source"]["factory"] == factory
    assert marker.exists()


def test_the_example_factory_is_allowed_by_default(digits_dir, monkeypatch):
    from trt_ops.operators import ExportOnnxOperator

    monkeypatch.delenv(OPTION_ENV, raising=False)
    op = ExportOnnxOperator(task_id="export", spec=str(digits_dir / "pipeline.yaml"))
    assert op.pipeline_spec.model.factory == "trt_ops.examples.digits:build_model"


def test_the_cli_is_not_limited(digits_dir, untrusted_factory, tmp_path, monkeypatch):
    from trt_ops.cli import main

    factory, marker = untrusted_factory
    monkeypatch.setenv(OPTION_ENV, "nothing.allowed:here")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(_spec(digits_dir, factory, tmp_path)))
    assert main(["export", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "e.json")]) == 0
    assert marker.exists()
