"""Dynamic axes as the stages take them: ``{name: {"min", "opt", "max"}}``, batch included.

The sizes each stage picks from the ranges: the example the exporter traces, the shapes the
parity check runs, and the combinations the benchmark times.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from trt_ops.errors import SpecError
from trt_ops.spec.schema import BATCH

DimRanges = Mapping[str, Mapping[str, int]]
DEFAULT_BATCH = {"min": 1, "opt": 32, "max": 32}


def resolve(dims: DimRanges | None) -> dict[str, dict[str, int]]:
    """Every range checked (min <= opt <= max), with the batch's default range where absent."""
    out = {BATCH: dict(DEFAULT_BATCH)}
    for name, r in (dims or {}).items():
        lo, hi = int(r["min"]), int(r["max"])
        opt = int(r.get("opt") or hi)
        if not 1 <= lo <= opt <= hi:
            raise SpecError(f"dynamic axis {name!r} needs 1 <= min <= opt <= max, got min {lo}, "
                            f"opt {opt}, max {hi}", f"fix model.dims.{name} in the spec")
        out[name] = {"min": lo, "opt": opt, "max": hi}
    return out


def export_sizes(dims: DimRanges) -> dict[str, int]:
    """Sizes for the traced example: within range, never 0 or 1 (the tracer would specialize
    them) and distinct from each other where the ranges allow (equal sizes look tied)."""
    sizes: dict[str, int] = {}
    for name, r in resolve(dims).items():
        start = 2 if name == BATCH else r["opt"]
        candidates = [s for s in range(max(start, r["min"], 2), r["max"] + 1)][:64] or [r["max"]]
        sizes[name] = next((s for s in candidates if s not in sizes.values()), candidates[0])
    return sizes


def parity_shapes(dims: DimRanges, batch: int = 3) -> list[dict[str, int]]:
    """The sizes the parity check runs at: every other axis at its min, then at its max."""
    r = resolve(dims)
    b = min(max(batch, r[BATCH]["min"]), r[BATCH]["max"])
    others = [n for n in r if n != BATCH]
    shapes = [{BATCH: b, **{n: r[n][k] for n in others}} for k in ("min", "max")]
    return [s for i, s in enumerate(shapes) if s not in shapes[:i]]


def benchmark_shapes(dims: DimRanges, sizes: Mapping[str, Sequence[int]] | None
                     ) -> list[dict[str, int]]:
    """Combinations of the non-batch axes to time: the given sizes, else each axis's opt."""
    r = resolve(dims)
    others = [n for n in r if n != BATCH]
    choices = [list((sizes or {}).get(n) or [r[n]["opt"]]) for n in others]
    return [dict(zip(others, combo)) for combo in itertools.product(*choices)]


def dynamic_names(inputs: Sequence[object]) -> list[str]:
    """The named axes other than the batch, in the order the inputs name them."""
    out: list[str] = []
    for i in inputs:
        for axis, name in i.dynamic_axes.items():  # type: ignore[attr-defined]
            if axis > 0 and name != BATCH and name not in out:
                out.append(name)
    return out
