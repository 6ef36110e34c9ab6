"""Reports people look at rather than read: GX Data Docs pages, plots and an HTML summary."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.reports.plots import class_agreement_plot, error_histogram

if TYPE_CHECKING:
    import pandas as pd

    from trt_ops.quality.gate import GateResult
    from trt_ops.store.manifest import Manifest


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones: GX's renderer cannot format np.float64 (GX 1.24)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def data_docs_page(result: Any, path: Path) -> Path:
    """The GX Data Docs page of one validation result, as a single HTML file."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for r in result.results:
        r.result = _plain(r.result)
    path.write_text(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
    return path


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def validation_report(folder: Path, frame: pd.DataFrame, metrics: dict[str, Any],
                      gate: GateResult, engine: Manifest, task: str) -> dict[str, Path]:
    title = (f"{engine.spec['precision']} engine for {engine.spec['target']} "
             f"({engine.spec['backend']} {engine.spec['backend_version']})")
    png = error_histogram(frame, title, folder / "error_histogram.png")
    verdict = "PASSED" if gate.passed else "FAILED"
    checks = "".join(
        f"<li class={'ok' if c.passed else 'bad'}>{html.escape(str(c))}</li>" for c in gate.checks)
    image = base64.b64encode(png.read_bytes()).decode()
    docs = ('<p><a href="gate_data_docs.html">Great Expectations Data Docs of the gate</a></p>'
            if gate.gx_result is not None else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}
.ok{{color:#176317}}.bad{{color:#a31515;font-weight:bold}}</style></head><body>
<h1>{html.escape(title)}: {verdict}</h1>
<h2>Accuracy gate</h2><ul>{checks}</ul>{docs}
<h2>Metrics ({task})</h2>{_table([(k, v) for k, v in metrics.items() if not isinstance(v, dict)])}
<h2>Errors per sample</h2><img src="data:image/png;base64,{image}" alt="error histogram">
<h2>Engine</h2>{_table([("sha256", engine.artifact('engine').sha256),
                         ("hardware", engine.spec['hardware']), ("key", engine.key)])}
</body></html>"""
    report = folder / "report.html"
    report.write_text(page)
    out = {"report": report, "error_histogram": png}
    if "top1_agree" in frame:
        out["class_agreement"] = class_agreement_plot(frame, title, folder / "class_agreement.png")
    if gate.gx_result is not None:
        out["gate_data_docs"] = data_docs_page(gate.gx_result, folder / "gate_data_docs.html")
    return out
