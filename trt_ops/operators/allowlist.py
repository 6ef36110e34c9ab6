"""Which model factories a DAG may call: ``[trt_ops] allowed_factories`` in Airflow's configuration.

A factory is imported and called on a worker: whoever can trigger a DAG run with a spec could
otherwise run any importable function there. The deployment's configuration (not the run's
spec) lists what may be called, as comma-separated ``fnmatch`` patterns of ``module:function``::

    [trt_ops]
    allowed_factories = trt_ops.examples.*,mypkg.models:make

or ``AIRFLOW__TRT_OPS__ALLOWED_FACTORIES``. The check runs in the ``plan`` task and in every
operator, before anything is imported. The ``trt-ops`` CLI (a local, trusted user) is not limited.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

SECTION, OPTION = "trt_ops", "allowed_factories"
DEFAULT = "trt_ops.examples.*"


def allowed_patterns() -> list[str]:
    """The configured patterns (the provider's default when the option is not set)."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow before the task SDK's own configuration
        from airflow.configuration import conf

    raw = conf.get(SECTION, OPTION, fallback=DEFAULT) or ""
    return [p.strip() for p in raw.split(",") if p.strip()]


def check_factory(spec: Any) -> None:
    """Fails the task, without retry, when the spec's model factory is not allowed."""
    factory = getattr(getattr(spec, "model", None), "factory", None)
    if not factory:
        return
    patterns = allowed_patterns()
    if any(fnmatchcase(factory, p) for p in patterns):
        return
    from airflow.sdk.exceptions import AirflowFailException

    from trt_ops.errors import ModelSourceError

    error = ModelSourceError(
        f"model factory {factory!r} is not allowed on this Airflow deployment (allowed: "
        f"{', '.join(patterns) or 'none'})",
        f"ask an administrator to add it to [{SECTION}] {OPTION} in airflow.cfg (or "
        f"AIRFLOW__{SECTION.upper()}__{OPTION.upper()}), e.g. "
        f"{OPTION} = {','.join([*patterns, factory])}")
    raise AirflowFailException(str(error)) from error
