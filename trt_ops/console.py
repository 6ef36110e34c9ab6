"""The terminal: quiet by default, progress for long loops, tables rendered for a terminal.

At the default verbosity only trt-ops speaks: third-party warnings (exporters, Great
Expectations, MLflow) and INFO lines are shown with ``-v`` only. Under Airflow the task log is
the console, and progress becomes periodic log lines.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

T = TypeVar("T")
log = logging.getLogger("trt_ops")

class _OwnWarnings(logging.Filter):
    """At the default verbosity: trt-ops's warnings, and only errors of other libraries
    (some set their own loggers to INFO, which a root level alone does not stop)."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "trt_ops" or record.name.startswith("trt_ops.")
        return record.levelno >= (logging.WARNING if own else logging.ERROR)


class _Redact(logging.Filter):
    """Credentials (URL userinfo, AWS keys, tokens) masked in every log line of the CLI."""

    def filter(self, record: logging.LogRecord) -> bool:
        from trt_ops.errors import redact

        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a malformed record is logged as it is)
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def configure(verbose: bool) -> None:
    """Logging and warnings for the CLI: ``verbose`` shows everything, else trt-ops alone."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Redact())
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OwnWarnings())
    warnings.filterwarnings("ignore")  # third-party deprecation and future warnings
    # torch logs through handlers of its own, set up when it is imported: ask it for errors only
    os.environ.setdefault("TORCH_LOGS", "-onnx,-dynamo,-inductor,-export")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's own handler, likewise


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_table(title: str, rows: Sequence[dict[str, str]], *, wrap: Sequence[str] = ()) -> None:
    """Rows of equal keys as a table on stdout: drawn for a terminal, plain columns when piped
    (nothing cut short, for logs and scripts)."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    if not sys.stdout.isatty():
        columns = list(rows[0])
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
        print(title)
        for r in [dict(zip(columns, columns)), *rows]:
            print("  ".join(r[c].ljust(widths[c]) for c in columns).rstrip())
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in rows[0]:
        numeric = any(ch.isdigit() for ch in rows[0][column][:1])
        table.add_column(column, justify="right" if numeric else "left",
                         overflow="fold" if column in wrap else "ellipsis",
                         no_wrap=column not in wrap)
    for row in rows:
        style = {"PASSED": "green", "FAILED": "red"}
        table.add_row(*[f"[{style[v]}]{v}[/]" if v in style else v for v in row.values()])
    Console(highlight=False).print(table)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yields ``items``: a live bar on a terminal, a log line per quarter elsewhere."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    step = max(1, (total or 0) // 4)
    for i, item in enumerate(items, 1):
        yield item
        if total and (i % step == 0 or i == total):
            log.info("%s: %d/%d", description, i, total)


class Progress:
    """Progress reported from elsewhere (a child process) as (description, done, total): live
    bars on a terminal, a log line per quarter of each task elsewhere."""

    def __init__(self) -> None:
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        self._logged: dict[str, int] = {}

    def __enter__(self) -> Self:
        if sys.stderr.isatty():
            from rich.progress import Progress as Bars

            self._bars = Bars(transient=True)
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def update(self, description: str, done: int, total: int) -> None:
        if self._bars is not None:
            if description not in self._tasks:
                self._tasks[description] = self._bars.add_task(description, total=total)
            self._bars.update(self._tasks[description], completed=done, total=total)
            return
        quarter = done * 4 // max(total, 1)
        if done and quarter > self._logged.get(description, 0):
            self._logged[description] = quarter
            log.info("%s: %d/%d", description, done, total)
