"""The trap model's pipeline folder: a small CNN made to fail its int8 gate on purpose
(:func:`tests.core.models.trap_cnn`), with calibration and validation data and a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

# the int8 gate of these tests: 32 held-out calibration samples, so one disagreement is 0.97
THRESHOLDS = {"top1_agreement": 0.9, "min_cosine": 0.99}


def trap_folder(folder: Path, **changes: Any) -> Path:
    """Writes calibration.npz, validation.npz and pipeline.yaml; returns the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("calibration", "validation"):
        np.savez(folder / f"{name}.npz", image=rng.standard_normal((128, 3, 8, 8), np.float32))
    doc: dict[str, Any] = {
        "name": "trap-cnn",
        "model": {"factory": "tests.core.models:trap_cnn",
                  "inputs": [{"name": "image", "shape": ["batch", 3, 8, 8]}]},
        "data": {"calibration": "calibration.npz", "validation": "validation.npz"},
        "calibration": {"samples": 128, "method": "minmax",
                        "mixed_precision": {"mode": "on_fail", "max_float_fraction": 0.5}},
        "precisions": ["int8"], "store": "store", "thresholds": {"int8": THRESHOLDS},
        "benchmark": {"batch_sizes": [1, 32], "iterations": 5, "warmup": 1,
                      "torch_compile": False},
    }
    for key, value in changes.items():
        section, _, field = key.rpartition(".")
        holder = doc
        for part in filter(None, section.split(".")):
            holder = holder.setdefault(part, {})
        holder[field] = value
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def trap_layers(onnx_path: Path) -> list[str]:
    """The Conv nodes holding the trap weights (1000): they compute in float when their weight
    is a plain initializer rather than the output of a DequantizeLinear."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    return sorted(n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in weights
                  and float(np.abs(weights[n.input[1]]).max()) >= 1000)


def float_convs(onnx_path: Path) -> list[str]:
    """Conv nodes whose weight is not dequantized: those kept float."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name for t in graph.initializer}
    return sorted(n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in weights)
