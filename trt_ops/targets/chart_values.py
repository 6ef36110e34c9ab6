"""Render the ``pools:`` values of the ``trt-ops-workers`` Helm chart from the target catalog.

The catalog (:mod:`trt_ops.targets.catalog`) is the one source of the GPU classes: the DAG fans out over
it, and the chart's worker pools are rendered from it, so a class's Celery queue, node selector
and tolerations cannot differ between the two::

    trt-ops chart-values --classes h100,h200 > pools.yaml
    helm install gpu-workers charts/trt-ops-workers -f pools.yaml

Every catalog class appears in the output; the chosen ones have ``enabled: true`` and the rest
``enabled: false``. Helm merges a values file into the chart's defaults key by key, so listing
every class is what makes the file decide on its own which pools exist; for the same reason a
class of the chart's defaults (the built-in catalog) that a custom catalog lacks is set to
``null``, which removes that pool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from trt_ops.errors import SpecError
from trt_ops.targets.catalog import DEFAULT_CATALOG, Target, load_catalog


def pool_values(target: Target, *, enabled: bool = True) -> dict[str, Any]:
    """The chart values of one worker pool: the catalog's part of ``pools.<class>``."""
    return {
        "enabled": enabled,
        "description": target.description,
        "queue": target.queue,
        "gpus": 1 if target.is_gpu else 0,
        "nodeSelector": dict(target.node_selector),
        "tolerations": [dict(t) for t in target.tolerations],
    }


def render_chart_values(catalog_path: str | Path | None = None,
                        classes: Iterable[str] | None = None) -> dict[str, Any]:
    """``{"pools": {...}}`` for the chart, one pool per catalog class.

    ``classes`` picks the pools to enable (default: all); the others are rendered disabled.
    """
    catalog = load_catalog(catalog_path)
    chosen = set(catalog) if classes is None else set(classes)
    unknown = sorted(chosen - set(catalog))
    if unknown:
        raise SpecError(f"unknown target classes {unknown}",
                        f"use some of {sorted(catalog)} (the catalog's classes)")
    if not chosen:
        raise SpecError("no target class chosen", f"pass some of {sorted(catalog)}")
    pools: dict[str, Any] = {name: pool_values(t, enabled=name in chosen) for name, t in catalog.items()}
    for name in load_catalog(DEFAULT_CATALOG):
        pools.setdefault(name, None)  # a chart default this catalog lacks: remove the pool
    return {"pools": pools}


def dump(values: dict[str, Any]) -> str:
    """YAML as the chart's values.yaml writes it: block style, keys in catalog order."""
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=False, width=100)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the chart's ``pools:`` values rendered from the target catalog."""
    parser = argparse.ArgumentParser(
        prog="trt-ops chart-values",
        description="Print the trt-ops-workers chart's pools values, rendered from the target "
                    "catalog (use the output as a helm values file).")
    parser.add_argument("--catalog", metavar="PATH",
                        help="target catalog YAML (default: $TRT_OPS_TARGETS or the built-in one)")
    parser.add_argument("--classes", metavar="A,B",
                        help="comma-separated classes whose pools are enabled (default: all)")
    args = parser.parse_args(argv)
    classes = None
    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    try:
        values = render_chart_values(args.catalog, classes)
    except SpecError as exc:
        print(f"trt-ops chart-values: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(dump(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
