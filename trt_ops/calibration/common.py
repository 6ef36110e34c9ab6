"""Calibrators: they place the Q/DQ nodes (or casts) for the engine that will run them.

Each runs in its own process (:mod:`trt_ops.calibration.isolated`) and takes ``onnx_in``, ``onnx_out``,
``data_npz`` (calibration samples, one array per input), ``precision`` and ``method``.

- onnxruntime: its own static quantizer (QDQ, uint8 activations, int8 per-channel weights),
  whose placement onnxruntime fuses into QLinearConv/QLinearMatMul kernels.
- TensorRT: Model Optimizer's ONNX PTQ (int8, fp8), placed the way TensorRT fuses them.
- fp16/bf16: Model Optimizer AutoCast, which keeps numerically sensitive nodes in fp32.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The calibration arrays, one per input (padded where samples differ in length)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if not k.startswith("lengths.")}


def sample_feeds(path: str, axes: dict[str, dict[str, str]] | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per calibration sample, each cut to its real lengths (``lengths.<axis>``).

    ``axes``: per input, {axis index (as text): axis name}, from the stage.
    """
    from trt_ops.data import ragged

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    lengths = ragged.pop_lengths(arrays)
    named = {name: {int(a): d for a, d in m.items()} for name, m in (axes or {}).items()}
    n = len(next(iter(arrays.values())))
    return [ragged.cut(arrays, named, slice(i, i + 1), {d: int(v[i]) for d, v in lengths.items()})
            for i in range(n)]


def passthrough(onnx_in: str, onnx_out: str, **_: Any) -> dict[str, Any]:
    """fp32: the exported graph as it is."""
    shutil.copyfile(onnx_in, onnx_out)
    return {"calibrator": "passthrough"}


