"""Reports people look at rather than read: GX Data Docs pages, plots and an HTML summary."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from trt_ops.gate import GateResult
    from trt_ops.manifest import Manifest


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


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


def class_agreement_plot(frame: "pd.DataFrame", title: str, path: Path) -> Path:
    """Top-1 agreement (and accuracy where labels exist) per class of the reference."""
    plt = _pyplot()
    by = "label" if "label" in frame else "ref_top1"
    grouped = frame.groupby(by)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    classes = [str(c) for c in grouped.groups]
    width = 0.4 if "engine_correct" in frame else 0.8
    ax.bar([i - width / 2 * ("engine_correct" in frame) for i in range(len(classes))],
           grouped["top1_agree"].mean(), width, label="top-1 agreement", color="#4C72B0")
    if "engine_correct" in frame:
        ax.bar([i + width / 2 for i in range(len(classes))], grouped["engine_correct"].mean(),
               width, label="engine accuracy", color="#55A868")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_xlabel(by)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_plot(rows: list[dict[str, Any]], path: Path, title: str = "latency") -> Path:
    """p50/p99 latency against batch size from a benchmark manifest's ``info["rows"]``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [r["batch_size"] for r in rows]
    for who, color in (("engine", "#4C72B0"), ("reference", "#C44E52")):
        if all(who in r for r in rows):
            ax.plot(sizes, [r[who]["p50_ms"] for r in rows], "o-", color=color, label=f"{who} p50")
            ax.plot(sizes, [r[who]["p99_ms"] for r in rows], "o--", color=color, alpha=0.5,
                    label=f"{who} p99")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per batch")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def error_histogram(frame: "pd.DataFrame", title: str, path: Path) -> Path:
    plt = _pyplot()
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
