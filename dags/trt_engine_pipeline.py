"""trt-ops example DAG: a PyTorch model to validated engines, one per target class.

    export -> check_data -> calibrate_<backend> (mapped over precisions)
        -> per class in the catalog, on that class's queue and pool:
           build -> validate -> benchmark (each mapped over precisions)
        -> register (MLflow; emits an event on the ``trt_ops_registered_engines`` Asset)

The classes come from the target catalog (``$TRT_OPS_TARGETS`` or the built-in one) when the
file is parsed; classes not chosen in the ``targets`` param skip at run time. Precision
fallback (``fallback`` in a spec run by the CLI) is not done here: a failed gate is recorded
as a FAILED verdict and that engine is not registered.

The defaults run the digits example: ``trt-ops example digits --dir ~/trt-ops-example``
(or set ``TRT_OPS_EXAMPLE_DIR``). Pools: each class's tasks use the catalog's pool; create
them with ``airflow pools set <pool> <slots> <description>``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, task

from trt_ops.operators.assets import REGISTERED_ENGINES
from trt_ops.operators.benchmark import BenchmarkEngineOperator
from trt_ops.operators.build import BuildEngineOperator
from trt_ops.operators.calibrate import CalibrateOperator
from trt_ops.operators.check_data import CheckDataOperator
from trt_ops.operators.export import ExportOnnxOperator
from trt_ops.operators.register import RegisterEnginesOperator
from trt_ops.operators.validate import ValidateEngineOperator
from trt_ops.targets import load_catalog

EXAMPLE = Path(os.environ.get("TRT_OPS_EXAMPLE_DIR") or "~/trt-ops-example").expanduser()
CATALOG = load_catalog()
BACKENDS = sorted({t.backend for t in CATALOG.values()})
PRECISIONS = ["int8", "fp8", "fp16", "bf16", "fp32"]
DEFAULT_TARGETS = [n for n, t in CATALOG.items() if t.backend == "onnxruntime"][:1] or list(CATALOG)[:1]


def executor_config(pod_override: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"pod_override": V1Pod}`` for the KubernetesExecutor, from a class's ``pod_override``
    dict; ``None`` without one, or where the kubernetes client is not installed (Celery)."""
    if not pod_override:
        return None
    try:
        from kubernetes.client import ApiClient
    except ImportError:
        return None

    class _Response:  # ApiClient.deserialize reads a response's .data
        def __init__(self, data: Any) -> None:
            import json

            self.data = json.dumps(data)

    pod = ApiClient().deserialize(_Response(pod_override), "V1Pod")
    return {"pod_override": pod}


P = "params"  # shorthand for the templates below
params = {
    "model_name": Param("digits-cnn", type="string", title="Registered model name",
                        section="Model"),
    "model_factory": Param("trt_ops.examples.digits:build_model", type="string",
                           title="Model factory", description="module:function returning the "
                           "torch.nn.Module", section="Model"),
    "model_weights": Param(str(EXAMPLE / "model.pt"), type=["string", "null"],
                           title="Model weights (state_dict URI)", section="Model"),
    "model_inputs": Param([{"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}],
                          type="array", title="Model inputs",
                          description="[{name, shape (batch first), dtype}]", section="Model"),
    "model_outputs": Param(["logits"], type="array", title="Output names", section="Model"),
    "task": Param("classification", enum=["classification", "embedding", "regression"],
                  title="Task", section="Model"),
    "calibration_data": Param(str(EXAMPLE / "calibration.npz"), type="string",
                              title="Calibration data URI", section="Data"),
    "validation_data": Param(str(EXAMPLE / "validation.npz"), type="string",
                             title="Validation data URI", description="labels optional",
                             section="Data"),
    "calibration_samples": Param(512, type="integer", minimum=1, section="Data"),
    "precisions": Param(["int8", "fp16"], type="array", title="Precisions",
                        items={"type": "string", "enum": PRECISIONS}, examples=PRECISIONS,
                        uniqueItems=True, minItems=1, section="Engines"),
    "targets": Param(DEFAULT_TARGETS, type="array", title="Target classes",
                     description="classes of the target catalog; each builds on its own queue",
                     items={"type": "string", "enum": sorted(CATALOG)}, examples=sorted(CATALOG),
                     uniqueItems=True, minItems=1, section="Engines"),
    "thresholds": Param({"int8": {"top1_agreement": 0.98, "accuracy_drop": 0.02},
                         "fp16": {"top1_agreement": 0.99}}, type="object",
                        title="Accuracy gates per precision", section="Engines"),
    "max_batch": Param(32, type="integer", minimum=1, section="Engines"),
    "benchmark_batch_sizes": Param([1, 32], type="array", items={"type": "integer"},
                                   section="Benchmark"),
    "benchmark_iterations": Param(50, type="integer", minimum=1, section="Benchmark"),
    "benchmark_warmup": Param(10, type="integer", minimum=0, section="Benchmark"),
    "store": Param(str(EXAMPLE / "store"), type="string", title="Artifact store URI",
                   description="s3://bucket/prefix, file:///dir or a directory", section="Output"),
    "promote": Param(False, type="boolean", title="Promote to champion", section="Output"),
}


def t(name: str) -> str:
    return "{{ params." + name + " }}"


with DAG(
    dag_id="trt_engine_pipeline",
    description="PyTorch model -> validated inference engines per GPU class -> MLflow",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params=params,
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    tags=["trt-ops"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def plan(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Checks the params before any work; returns what each backend and class must do."""
        from trt_ops.engines import get_backend
        from trt_ops.errors import SpecError
        from trt_ops.spec import parse_spec
        from trt_ops.targets import get_target

        p = params or {}
        spec = parse_spec({
            "name": p["model_name"],
            "model": {"factory": p["model_factory"], "inputs": p["model_inputs"]},
            "data": {"calibration": p["calibration_data"], "validation": p["validation_data"]},
            "precisions": p["precisions"], "targets": p["targets"], "max_batch": p["max_batch"],
            "store": p["store"]})
        chosen = [get_target(n) for n in spec.targets]
        for target in chosen:
            for precision in spec.precisions:
                get_backend(target.backend).check_precision(precision, target)
        too_big = [b for b in p["benchmark_batch_sizes"] if b > spec.max_batch]
        if too_big:
            raise SpecError(f"benchmark batch sizes {too_big} exceed max_batch {spec.max_batch}",
                            "raise max_batch or drop those batch sizes")
        return {"targets": [t.name for t in chosen], "precisions": list(spec.precisions),
                "backends": sorted({t.backend for t in chosen}), "profile": spec.profile()}

    @task
    def precisions(backend: str, backends: list[str], wanted: list[str]) -> list[str]:
        """The precisions to calibrate for ``backend``: none when no chosen class uses it."""
        return list(wanted) if backend in backends else []

    @task
    def select(target: str, chosen: list[str], calibrations: Any) -> list[dict[str, Any]]:
        """The calibrated models this class builds; the class skips when it is not chosen."""
        from airflow.sdk.exceptions import AirflowSkipException

        from trt_ops.operators.base import sequence

        if target not in chosen:
            raise AirflowSkipException(f"target class {target!r} is not in params.targets {chosen}")
        return sequence(calibrations)

    planned = plan()
    store = t("store")
    inputs = t("model_inputs")
    export = ExportOnnxOperator(
        task_id="export", store=store, inputs=inputs, output_names=t("model_outputs"),
        source={"factory": t("model_factory"), "state_dict": t("model_weights")})
    check = CheckDataOperator(task_id="check_data", store=store, inputs=inputs,
                              calibration_data=t("calibration_data"),
                              validation_data=t("validation_data"))
    planned >> export >> check

    calibrations = {}
    for backend in BACKENDS:
        calibrations[backend] = CalibrateOperator.partial(
            task_id=f"calibrate_{backend}", backend=backend, store=store, inputs=inputs,
            export=export.output, calibration_data=t("calibration_data"),
            samples=t("calibration_samples"),
        ).expand(precision=precisions.override(task_id=f"precisions_{backend}")(
            backend, planned["backends"], planned["precisions"]))
        check >> calibrations[backend]

    builds, validations, benchmarks = [], [], []
    for name, target in CATALOG.items():
        on_class = {"queue": target.queue, "pool": target.pool, "store": store}
        config = executor_config(target.pod_override)
        if config:
            on_class["executor_config"] = config
        with TaskGroup(group_id=name, tooltip=target.description):
            picked = select.override(task_id="select")(name, planned["targets"],
                                                       calibrations[target.backend].output)
            build = BuildEngineOperator.partial(
                task_id="build", target=name, profile=planned["profile"], **on_class,
            ).expand(calibrated=picked)
            validate = ValidateEngineOperator.partial(
                task_id="validate", export=export.output, inputs=inputs, task=t("task"),
                validation_data=t("validation_data"), thresholds=t("thresholds"), **on_class,
            ).expand(engine=build.output)
            bench = BenchmarkEngineOperator.partial(
                task_id="benchmark", export=export.output, inputs=inputs,
                batch_sizes=t("benchmark_batch_sizes"), iterations=t("benchmark_iterations"),
                warmup=t("benchmark_warmup"), **on_class,
            ).expand(engine=build.output)
            validate >> bench
        builds.append(build.output)
        validations.append(validate.output)
        benchmarks.append(bench.output)

    RegisterEnginesOperator(
        task_id="register", store=store, model_name=t("model_name"), export=export.output,
        builds=builds, validations=validations, benchmarks=benchmarks,
        calibrations=[c.output for c in calibrations.values()], promote=t("promote"),
        outlets=[REGISTERED_ENGINES], trigger_rule="none_failed_min_one_success", retries=0)
