from __future__ import annotations

from functools import cached_property
from typing import Any, final

from trt_ops.operators.base import TrtOpsBaseOperator, manifest, trt_template_fields


class PublishTritonOperator(TrtOpsBaseOperator):
    """Writes the version the register task made into the spec's Triton model repository
    (``serving.triton_repository``), through the ``triton`` MLflow deployments target
    (:func:`trt_ops.pipeline.steps.publish_step`): creates the deployment, or updates it to this
    version; re-running with nothing new changes nothing.

    Optional in a DAG: the task skips when it has no repository, or when the version does not
    hold the serving alias (``champion`` by default). The XCom value names the deployment, the
    version served and the repository URI of each node pool (``{"h100": "s3://.../h100"}``).

    :param registered: the register task's manifest (templated)
    :param repository: the Triton model repository (templated; mappable); default: the spec's
        ``serving.triton_repository``
    :param mlflow_conn_id: the ``mlflow`` connection (tracking URI, registry URI, token)
    """

    template_fields = trt_template_fields("registered", "repository")
    ui_color = "#fdebd0"

    def __init__(self, *, registered: Any, repository: str | None = None,
                 mlflow_conn_id: str | None = "mlflow_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registered = registered
        self.repository = repository
        self.mlflow_conn_id = mlflow_conn_id

    @final
    @cached_property
    def mlflow_hook(self) -> Any:
        from trt_ops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from trt_ops.pipeline.steps import publish_step
        from trt_ops.store.manifest import Status

        spec = self.pipeline_spec
        if self.repository:
            spec = spec.model_copy(update={"serving": spec.serving.model_copy(
                update={"triton_repository": str(self.repository)})})
        result = publish_step(spec, manifest(self.registered, "registered"),
                              open_store=self.hook.open, connection=self.mlflow_hook.settings)
        if result.status == Status.SKIPPED:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"nothing published: {result.info['reason']}")
        for note in result.info["layout"]:
            self.log.info("%s", note)
        self.log.info("%s serves %s from %s", result.info["name"], result.info["model_uri"],
                      ", ".join(result.info["repositories"].values()))
        return self.finish(result)
