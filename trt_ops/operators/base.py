"""What every trt-ops operator shares: the pipeline spec argument, the artifact store's hook,
templated fields declared through one helper, and the manifest-as-XCom convention."""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import logging
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, final

from airflow.sdk import BaseOperator

from trt_ops.hooks.store import ArtifactStoreHook

if TYPE_CHECKING:
    from trt_ops.spec import PipelineSpec
    from trt_ops.store import ArtifactStore
    from trt_ops.store.manifest import Manifest

log = logging.getLogger(__name__)

SHARED_FIELDS = ("spec",)


def trt_template_fields(*fields: str) -> tuple[str, ...]:
    """The operator's templated fields plus the shared ones, sorted (one place declares them)."""
    return tuple(sorted({*fields, *SHARED_FIELDS}))


def native(value: Any, what: str) -> Any:
    """A rendered template as a Python value.

    DAGs with ``render_template_as_native_obj=True`` render ``"{{ params.precisions }}"`` to a
    list; other DAGs render it to its text. Both arrive here as the same value.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in "[{(\"'0123456789-tfTFn":
        return value
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    if text[0] in "[{(":
        raise ValueError(f"{what}: cannot read {value!r} as JSON or a Python literal")
    return value


def pipeline_spec(value: Any) -> PipelineSpec:
    """The pipeline spec from an operator's ``spec`` argument: a spec mapping (the ``plan``
    task's XCom), a :class:`PipelineSpec`, or the path or file:// URI of a spec YAML; its model
    factory checked against ``[trt_ops] allowed_factories`` (:mod:`trt_ops.operators.allowlist`)."""
    from trt_ops.operators.allowlist import check_factory
    from trt_ops.spec import PipelineSpec, load_spec, parse_spec

    value = native(value, "spec")
    if isinstance(value, PipelineSpec):
        spec = value
    elif isinstance(value, str):
        spec = load_spec(value)
    else:
        spec = parse_spec(value, None, source="the task's spec")
    check_factory(spec)  # before any stage imports the factory
    mask_uri_passwords(spec.model_dump(mode="json"))
    return spec


def mask_uri_passwords(doc: Any) -> None:
    """Registers the password of every ``scheme://user:password@host`` URI in ``doc`` (a store,
    a tracking URI) with Airflow's secrets masker, so task logs show ``***``."""
    from urllib.parse import urlparse

    from airflow.sdk.log import mask_secret

    if isinstance(doc, dict):
        doc = list(doc.values())
    if isinstance(doc, list):
        for value in doc:
            mask_uri_passwords(value)
    elif isinstance(doc, str) and "@" in doc and "://" in doc:
        try:
            password = urlparse(doc).password
        except ValueError:
            return
        if password:
            mask_secret(password)


def manifest(value: Any, what: str) -> Manifest:
    """A manifest from an XCom value (its dict form, or JSON text)."""
    from trt_ops.store.manifest import Manifest

    value = native(value, what)
    if not isinstance(value, dict):
        raise TypeError(f"{what}: expected a manifest dict (an upstream task's XCom), "
                        f"got {type(value).__name__}")
    return Manifest.coerce(value)


def flat_list(value: Any, what: str) -> list[Any]:
    """Lists of XCom values (mapped tasks, several classes) as one list; skipped tasks' ``None``
    values dropped."""
    value = native(value, what)
    if value is None:
        return []
    if isinstance(value, (dict, str)):
        return [value]
    out: list[Any] = []
    for item in sequence(value):
        out.extend(flat_list(item, what))
    return out


def sequence(value: Any) -> list[Any]:
    """A list from a list or from a mapped task's lazy XCom sequence (read by index, since
    iterating one probes past its end)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value[i] for i in range(len(value))]


@contextlib.contextmanager
def no_retry_on_mismatch() -> Iterator[None]:
    """A worker of the wrong hardware is a routing error that a retry on the same queue cannot
    fix: the task fails without retrying (``AirflowFailException``), with the mismatch error
    (expected and found hardware) as its message and cause."""
    from trt_ops.errors import TargetMismatchError

    try:
        yield
    except TargetMismatchError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


class TrtOpsBaseOperator(BaseOperator):
    """Base of the stage operators.

    :param spec: the pipeline spec: the ``plan`` task's validated spec (an XComArg), a spec
        mapping, or the path of a spec YAML (templated). The store, model, data, gates and
        builder options all come from it, as in ``trt-ops run``.
    :param aws_conn_id: the amazon provider's ``aws`` connection for ``s3://`` stores
        (``endpoint_url`` in its extras for S3-compatible servers); ``None`` for boto3's defaults
    """

    template_fields: tuple[str, ...] = trt_template_fields()
    ui_color = "#d5f5e3"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each operator's ``execute`` runs in the ``aws`` connection's S3 scope, so every S3 read
        of the task, not only the store's, uses the connection and nothing outlives the task."""
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is None:
            return

        @functools.wraps(execute)
        def execute_in_scope(self: TrtOpsBaseOperator, *args: Any, **kw: Any) -> Any:
            with self.hook.s3_scope():
                return execute(self, *args, **kw)

        cls.execute = execute_in_scope  # type: ignore[method-assign]

    def __init__(self, *, spec: Any, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.aws_conn_id = aws_conn_id

    @final
    @cached_property
    def hook(self) -> ArtifactStoreHook:
        return ArtifactStoreHook(aws_conn_id=self.aws_conn_id)

    @property
    def pipeline_spec(self) -> PipelineSpec:
        return pipeline_spec(self.spec)

    def artifact_store(self) -> ArtifactStore:
        return self.hook.open(self.pipeline_spec.store)

    def check_worker(self, target_name: str) -> None:
        """Fails before any work when this worker is not the hardware ``target_name`` names
        (the task was routed to the wrong queue), naming the expected and the found hardware."""
        from trt_ops.targets.catalog import get_target
        from trt_ops.targets.host import check_target

        with no_retry_on_mismatch():
            check_target(get_target(target_name))

    def finish(self, result: Manifest) -> dict[str, Any]:
        """Logs the outcome and returns the manifest's dict form, the task's XCom value."""
        self.log.info("%s %s: %s%s (%.2f s), worker %s", result.stage, result.key[:16],
                      result.status.value, " (cache hit)" if result.cache_hit else "",
                      result.seconds, result.info.get("worker", "-"))
        return result.to_dict()
