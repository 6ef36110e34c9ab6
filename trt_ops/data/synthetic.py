"""Random feeds shaped like a model's inputs, for parity checks and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trt_ops.errors import SpecError
from trt_ops.spec import BATCH, InputSpec


def sample_feeds(inputs: Sequence[InputSpec], batch: int, seed: int = 0,
                 sizes: Mapping[str, int] | None = None,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> dict[str, np.ndarray]:
    """One random batch per input; ``sizes`` gives each dynamic axis other than the batch.

    Integer inputs take values within ``ranges[name]`` where given, else 0 or 1: every index,
    mask and token-type input accepts those.
    """
    rng = np.random.default_rng(seed)
    sizes = {**(sizes or {}), BATCH: batch}
    feeds = {}
    for i in inputs:
        missing = sorted(set(i.dynamic_axes.values()) - set(sizes))
        if missing:
            raise SpecError(f"input {i.name!r} has dynamic axes {missing} without a size here",
                            "pass their sizes (the spec's model.dims give the optimal ones)")
        shape = tuple(i.concrete(sizes))
        low, high = (ranges or {}).get(i.name, (None, None))
        if i.dtype.startswith("float"):
            x = rng.standard_normal(shape)
            if low is not None:
                x = low + (high - low) * rng.random(shape)
            feeds[i.name] = x.astype(i.dtype)
        elif i.dtype == "bool":
            feeds[i.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            lo, hi = (int(low), int(high)) if low is not None else (0, 1)
            feeds[i.name] = rng.integers(lo, hi + 1, shape).astype(i.dtype)
    return feeds
