"""trt-ops example DAG: a PyTorch model to validated engines, one per target class, in MLflow.

    plan -> check_data -> export -> calibrate_<backend> (mapped over precisions)
        -> per class in the catalog, on that class's queue and pool:
           build -> validate -> benchmark (each mapped over precisions)
           -> fallback (only with ``fallback``: the next precision for each engine that failed)
        -> register (MLflow; emits an event on the ``trt_ops_registered_engines`` Asset)
        -> publish (mapped over the spec's Triton repository, if it names one: the champion
           into the Triton model repository)

The trigger form is generated from the pipeline spec's schema (one param per spec field, in a
section per spec section), and a ``spec`` param takes a whole spec file instead. ``plan``
validates the run's spec with the same code as ``trt-ops run`` and hands it to every task, so a
spec means the same thing here and on the command line.

The classes come from the target catalog (``$TRT_OPS_TARGETS`` or the built-in one) when the
file is parsed; classes not chosen in the spec's ``targets`` skip at run time: they get no
precisions to build, so the scheduler skips their tasks without a worker of that class. Pools: each
class's tasks use the catalog's pool; create them with ``airflow pools set <pool> <slots> <desc>``.

The defaults run the digits example: ``trt-ops example digits --dir ~/trt-ops-example``
(or set ``TRT_OPS_EXAMPLE_DIR``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, TaskGroup, task

from trt_ops.examples.digits import spec_document
from trt_ops.operators.assets import REGISTERED_ENGINES
from trt_ops.operators.benchmark import BenchmarkEngineOperator
from trt_ops.operators.build import BuildEngineOperator
from trt_ops.operators.calibrate import CalibrateOperator
from trt_ops.operators.check_data import CheckDataOperator
from trt_ops.operators.export import ExportOnnxOperator
from trt_ops.operators.fallback import PrecisionFallbackOperator
from trt_ops.operators.params import spec_params
from trt_ops.operators.publish import PublishTritonOperator
from trt_ops.operators.register import RegisterEnginesOperator
from trt_ops.operators.validate import ValidateEngineOperator
from trt_ops.targets.catalog import load_catalog

EXAMPLE = Path(os.environ.get("TRT_OPS_EXAMPLE_DIR") or "~/trt-ops-example").expanduser()
DEFAULTS = spec_document(EXAMPLE)  # the form's defaults: the digits example, absolute paths
CATALOG = load_catalog()
BACKENDS = sorted({t.backend for t in CATALOG.values()})


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


def calibrated_model(pair: Any) -> Any:
    """The calibrated model of a (calibrate task's manifest, precision the class builds) pair."""
    return pair[0]


with DAG(
    dag_id="trt_engine_pipeline",
    description="PyTorch model -> validated inference engines per GPU class -> MLflow",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params=spec_params(DEFAULTS, list(CATALOG)),
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    tags=["trt-ops"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def plan(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validates the run's spec as ``trt-ops run`` does; what each backend and class must do."""
        from trt_ops.hooks.store import ArtifactStoreHook
        from trt_ops.operators.params import spec_from_params
        from trt_ops.pipeline.steps import plan_targets

        with ArtifactStoreHook().s3_scope():  # a spec by s3:// URI comes through aws_default
            spec = spec_from_params(params or {}, DEFAULTS)
        targets = plan_targets(spec)
        return {"spec": spec.model_dump(mode="json"), "targets": [t.name for t in targets],
                "backends": sorted({t.backend for t in targets}),
                "precisions": list(spec.precisions),
                "fallback_targets": [t.name for t in targets] if spec.fallback else [],
                "triton_repository": spec.serving.triton_repository}

    # The lists the mapped tasks expand over. An empty one (a backend or class the spec does not
    # use, no fallback, no Triton repository) leaves nothing to run: the scheduler skips the
    # mapped task without sending it to a worker, which for a class not chosen may not exist.
    # They run after check_data, beside export and behind it (the lowest priority), off the path
    # the run waits on.
    @task(priority_weight=1, weight_rule="absolute")
    def when_used(items: list[str], use: str, used: list[str]) -> list[str]:
        """``items`` when the spec uses ``use`` (a backend, a class, a class's fallback); else
        none."""
        return list(items) if use in used else []

    @task(priority_weight=1, weight_rule="absolute")
    def triton_repositories(repository: str | None) -> list[str]:
        """The Triton model repository the champion is published into, if the spec names one."""
        return [repository] if repository else []

    planned = plan()
    spec = planned["spec"]
    check = CheckDataOperator(task_id="check_data", spec=spec)
    export = ExportOnnxOperator(task_id="export", spec=spec)
    planned >> check >> export

    calibrations = {}
    for backend in BACKENDS:
        wanted = when_used.override(task_id=f"precisions_{backend}")(
            planned["precisions"], backend, planned["backends"])
        check >> wanted
        calibrations[backend] = CalibrateOperator.partial(
            task_id=f"calibrate_{backend}", backend=backend, spec=spec, export=export.output,
        ).expand(precision=wanted)

    builds, validations, benchmarks, fallbacks = [], [], [], []
    for name, target in CATALOG.items():
        on_class = {"queue": target.queue, "pool": target.pool, "spec": spec}
        config = executor_config(target.pod_override)
        if config:
            on_class["executor_config"] = config
        with TaskGroup(group_id=name, tooltip=target.description):
            # the backend's calibrated models, none where the class is not chosen
            builds_here = when_used.override(task_id="precisions")(
                planned["precisions"], name, planned["targets"])
            # a list of one, or none: without ``fallback`` the fallback task is skipped, not run
            fallback_here = when_used.override(task_id="fallback_target")(
                [name], name, planned["fallback_targets"])
            check >> [builds_here, fallback_here]
            picked = calibrations[target.backend].output.zip(builds_here).map(calibrated_model)
            build = BuildEngineOperator.partial(
                task_id="build", target=name, **on_class).expand(calibrated=picked)
            validate = ValidateEngineOperator.partial(
                task_id="validate", export=export.output, **on_class,
            ).expand(engine=build.output)
            bench = BenchmarkEngineOperator.partial(
                task_id="benchmark", export=export.output, **on_class,
            ).expand(engine=build.output)
            fallback = PrecisionFallbackOperator.partial(
                task_id="fallback", builds=build.output, validations=validate.output,
                export=export.output, **on_class).expand(target=fallback_here)
            validate >> bench >> fallback
        builds.append(build.output)
        validations.append(validate.output)
        benchmarks.append(bench.output)
        fallbacks.append(fallback.output)

    register = RegisterEnginesOperator(
        task_id="register", spec=spec, export=export.output, builds=builds,
        validations=validations, benchmarks=benchmarks,
        calibrations=[c.output for c in calibrations.values()], fallbacks=fallbacks,
        outlets=[REGISTERED_ENGINES], trigger_rule="none_failed_min_one_success", retries=0)
    # optional: runs where the spec names a Triton repository, and skips unless the version is
    # the champion
    repositories = triton_repositories(planned["triton_repository"])
    check >> repositories
    PublishTritonOperator.partial(task_id="publish", spec=spec, registered=register.output).expand(
        repository=repositories)
