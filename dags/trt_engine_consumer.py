"""Example consumer: runs whenever the trt-ops pipeline registers engines.

Scheduled on the ``trt_ops_registered_engines`` Asset; the triggering event's extra names the
model version (model_name, version, model_uri, aliases). Replace ``announce`` with what should
follow a registration: a canary deployment, a load test, a notification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from trt_ops.operators.assets import REGISTERED_ENGINES

with DAG(
    dag_id="trt_engine_consumer",
    schedule=[REGISTERED_ENGINES],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["trt-ops"],
    doc_md=__doc__,
) as dag:

    @task
    def announce(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """The registered versions that triggered this run."""
        versions = []
        for events in (triggering_asset_events or {}).values():
            for event in events:
                extra = dict(event.extra or {})
                print(f"registered {extra.get('model_name')} version {extra.get('version')}: "
                      f"{extra.get('model_uri')} aliases {extra.get('aliases')}")
                versions.append(extra)
        return versions

    announce()
