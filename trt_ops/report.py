"""Validation reports people look at rather than read: an error histogram and an HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from trt_ops.gate import GateResult
    from trt_ops.manifest import Manifest


def error_histogram(frame: "pd.DataFrame", title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(frame["max_abs_error"], bins=40, color="#4C72B0")
    axes[0].set_xlabel("max |engine - reference| per sample")
    axes[0].set_ylabel("samples")
    axes[1].hist(frame["cosine"], bins=40, color="#55A868")
    axes[1].set_xlabel("cosine similarity per sample")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def validation_report(folder: Path, frame: "pd.DataFrame", metrics: dict[str, Any],
                      gate: "GateResult", engine: "Manifest", task: str) -> dict[str, Path]:
    title = (f"{engine.spec['precision']} engine for {engine.spec['target']} "
             f"({engine.spec['backend']} {engine.spec['backend_version']})")
    png = error_histogram(frame, title, folder / "error_histogram.png")
    verdict = "PASSED" if gate.passed else "FAILED"
    checks = "".join(
        f"<li class={'ok' if c.passed else 'bad'}>{html.escape(str(c))}</li>" for c in gate.checks)
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}
.ok{{color:#176317}}.bad{{color:#a31515;font-weight:bold}}</style></head><body>
<h1>{html.escape(title)}: {verdict}</h1>
<h2>Accuracy gate</h2><ul>{checks}</ul>
<h2>Metrics ({task})</h2>{_table([(k, v) for k, v in metrics.items() if not isinstance(v, dict)])}
<h2>Errors per sample</h2><img src="data:image/png;base64,{image}" alt="error histogram">
<h2>Engine</h2>{_table([("sha256", engine.artifact('engine').sha256),
                         ("hardware", engine.spec['hardware']), ("key", engine.key)])}
</body></html>"""
    report = folder / "report.html"
    report.write_text(page)
    return {"report": report, "error_histogram": png}
