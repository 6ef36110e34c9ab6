"""The Asset that the register task updates: each event's extra names the model version."""

from __future__ import annotations

from airflow.sdk import Asset

#: One event per registration; ``extra``: model_name, version, model_uri, aliases.
REGISTERED_ENGINES = Asset(name="trt_ops_registered_engines", uri="trt-ops://registry/engines",
                           group="model")
