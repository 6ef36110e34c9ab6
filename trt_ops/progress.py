"""Progress of long loops: a live bar on a terminal, periodic log lines elsewhere (Airflow)."""

from __future__ import annotations

import logging
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("trt_ops")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    total = total if total is not None else len(items) if hasattr(items, "__len__") else None
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    step = max(1, (total or 0) // 4)
    for i, item in enumerate(items, 1):
        yield item
        if total and (i % step == 0 or i == total):
            log.info("%s: %d/%d", description, i, total)
