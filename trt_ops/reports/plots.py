"""Plots people look at rather than read: error histograms, agreement per class, latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Writes a figure as PNG and frees it (workers draw many in one process)."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def class_agreement_plot(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Top-1 agreement (and accuracy where labels exist) per class of the reference."""
    plt = pyplot()
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
    return save(fig, path)


LATENCY_SERIES = (("engine", "engine", "#4C72B0"), ("reference", "reference fp32", "#C44E52"),
                  ("torch_compile", "torch.compile", "#DD8452"))


def latency_plot(rows: list[dict[str, Any]], path: Path, title: str = "latency") -> Path:
    """p50 (line) and p99 (dashed) latency against batch size, engine beside the PyTorch
    references, from a benchmark manifest's ``info["rows"]``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    shapes = list(dict.fromkeys(str(r.get("sizes") or "") for r in rows))  # a line per shape
    for key, label, color in LATENCY_SERIES:
        for n, shape in enumerate(shapes):
            timed = [r for r in rows if "p50_ms" in r.get(key, {})
                     and str(r.get("sizes") or "") == shape]
            if not timed:
                continue
            name = f"{label} {shape}".strip().replace("'", "")
            sizes = [r["batch_size"] for r in timed]
            ax.plot(sizes, [r[key]["p50_ms"] for r in timed], "o-", color=color,
                    alpha=1 - 0.5 * n / len(shapes), label=f"{name} p50")
            if len(shapes) == 1:
                ax.plot(sizes, [r[key]["p99_ms"] for r in timed], "o--", color=color,
                        alpha=0.5, label=f"{name} p99")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per batch")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return save(fig, path)


def error_histogram(frame: pd.DataFrame, title: str, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(frame["max_abs_error"], bins=40, color="#4C72B0")
    axes[0].set_xlabel("max |engine - reference| per sample")
    axes[0].set_ylabel("samples")
    axes[1].hist(frame["cosine"], bins=40, color="#55A868")
    axes[1].set_xlabel("cosine similarity per sample")
    fig.suptitle(title)
    return save(fig, path)


def calibration_plot(layers: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Per quantized layer, in graph order: sensitivity (output error with that layer alone in
    int8; layers kept float in red) above, the share of its input clipped by the range below."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.5, 0.12 * len(layers)), 5), sharex=True)
    x = range(len(layers))
    sens = [layer.get("sensitivity") or 0.0 for layer in layers]
    colors = ["#C44E52" if layer.get("float") else "#4C72B0" for layer in layers]
    top.bar(x, sens, color=colors)
    top.set_ylabel("sensitivity")
    if any(s > 0 for s in sens):
        top.set_yscale("log")
    bottom.bar(x, [layer.get("clipped_fraction") or 0.0 for layer in layers], color="#DD8452")
    bottom.set_ylabel("clipped share")
    bottom.set_xlabel("quantized layer (graph order; red: kept float)")
    fig.suptitle(title)
    return save(fig, path)
