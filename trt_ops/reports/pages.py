"""Reports people look at rather than read: GX Data Docs pages, plots and an HTML summary."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_ops.reports.plots import calibration_plot, class_agreement_plot, error_histogram

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


def calibration_report(folder: Path, layers: list[dict[str, Any]], info: dict[str, Any],
                       title: str) -> dict[str, Path]:
    """The per-layer calibration report (HTML with its plot inside) and the plot on its own."""
    png = calibration_plot(layers, title, folder / "calibration_plot.png")
    mixed = info.get("mixed_precision") or {}

    def num(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    rows = "".join(
        f"<tr class={'bad' if layer.get('float') else 'ok'}><td>{html.escape(layer['name'])}</td>"
        f"<td>{layer['op_type']}</td><td>{'float' if layer.get('float') else 'int8'}</td>"
        f"<td>{num(layer.get('sensitivity'), '.3g')}</td><td>{num(layer.get('scale'), '.4g')}</td>"
        f"<td>{html.escape(str([round(v, 4) for v in layer['range']]) if layer.get('range') else '-')}</td>"
        f"<td>{num(layer.get('clipped_fraction'), '.2e')}</td></tr>" for layer in layers)
    summary = [("calibrator", info.get("calibrator")), ("method", info.get("method")),
               ("calibration samples", info.get("samples")), ("batch", info.get("batch")),
               ("calibration seconds", info.get("calibration_seconds")),
               ("total seconds", info.get("seconds"))]
    if mixed:
        summary += [("mixed precision", mixed.get("mode")), ("verdict", mixed.get("reason")),
                    ("gate passed on held-out samples", mixed.get("passed")),
                    ("plain int8 on held-out samples", mixed.get("plain", {}).get("metrics")),
                    ("FP32, only its inputs rounded to their int8 grid",
                     mixed.get("input_rounding", {}).get("metrics")),
                    ("final on held-out samples", mixed.get("metrics")),
                    ("float layers",
                     f"{len(mixed.get('float_layers', []))} of {mixed.get('quantized_layers')}"),
                    ("held-out / sensitivity samples",
                     f"{mixed.get('holdout_samples')} / {mixed.get('sensitivity_samples')}"),
                    ("search seconds", mixed.get("seconds")),
                    ("models evaluated", mixed.get("evaluations"))]
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}th,td{{text-align:left;padding-right:1em}}
.bad{{color:#a31515;font-weight:bold}}</style></head><body>
<h1>{html.escape(title)}</h1>{_table(summary)}
<p>Sensitivity: the output error (squared error over the FP32 output's energy) with that layer
alone in int8. Scale: the uint8 step of its input's calibrated range. Clipped: the share of its
input's values outside that range.</p>
<img src="data:image/png;base64,{image}" alt="per-layer sensitivity and clipping">
<h2>Layers</h2><table><tr><th>node</th><th>op</th><th>kept</th><th>sensitivity</th><th>scale</th>
<th>range</th><th>clipped</th></tr>{rows}</table></body></html>"""
    report = folder / "calibration_report.html"
    report.write_text(page)
    layers_json = folder / "calibration_layers.json"
    layers_json.write_text(json.dumps(layers, indent=1))
    return {"calibration_report": report, "calibration_plot": png, "calibration_layers": layers_json}
