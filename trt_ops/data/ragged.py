"""Samples of different lengths: padded arrays plus each sample's real size per dynamic axis.

A data file holds rectangular arrays, batch axis first, padded along each dynamic axis to the
longest sample. An array named ``lengths.<axis>`` (e.g. ``lengths.sequence``, one integer per
sample) gives each sample's real size on that axis, for every input that names the axis; without
it every sample is as long as the array. A sample is its arrays cut to its lengths: the padding
is never fed to a model. Stages that run samples (calibration, validation) run them in batches
of equal lengths, so every batch is a real shape within the engine's profile.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from trt_ops.errors import DataError

PREFIX = "lengths."


def pop_lengths(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Removes and returns the ``lengths.<axis>`` arrays, keyed by axis name."""
    return {k[len(PREFIX):]: arrays.pop(k) for k in [k for k in arrays if k.startswith(PREFIX)]}


def axes_of(inputs: Sequence[Any]) -> dict[str, dict[int, str]]:
    """Per input, its dynamic axes other than the batch: {input: {axis: name}}."""
    return {i.name: {a: n for a, n in i.dynamic_axes.items() if a > 0} for i in inputs}


def sample_lengths(arrays: Mapping[str, np.ndarray], inputs: Sequence[Any],
                   given: Mapping[str, np.ndarray], role: str, source: str) -> dict[str, np.ndarray]:
    """Each sample's size on every named axis, checked against the arrays' padded widths."""
    widths: dict[str, int] = {}
    for name, axes in axes_of(inputs).items():
        a = arrays[name]
        for axis, dim in axes.items():
            if a.ndim <= axis:
                continue  # the shape check reports the missing axis
            if dim in widths and widths[dim] != a.shape[axis]:
                raise DataError(f"{role} data {source}: axis {dim!r} is {a.shape[axis]} wide in "
                                f"input {name!r} and {widths[dim]} in another input",
                                f"pad every input to the same width along {dim!r}")
            widths[dim] = a.shape[axis]
    unknown = sorted(set(given) - set(widths))
    if unknown:
        raise DataError(f"{role} data {source} has lengths for {unknown}, which no input names "
                        f"as a dynamic axis", f"name the arrays {PREFIX}<axis> after axes of "
                        f"model.dims ({sorted(widths) or 'none besides the batch'})")
    n = len(next(iter(arrays.values())))
    out = {}
    for dim, width in widths.items():
        if dim not in given:
            out[dim] = np.full(n, width, np.int64)
            continue
        lengths = np.asarray(given[dim])
        if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
            raise DataError(f"{role} data {source}: {PREFIX}{dim} must hold one integer per "
                            f"sample ({n}), got {lengths.dtype} of shape {lengths.shape}",
                            f"save the real size of each sample along {dim!r} as int64")
        bad = np.flatnonzero((lengths < 1) | (lengths > width))
        if len(bad):
            raise DataError(f"{role} data {source}: {len(bad)} samples have {PREFIX}{dim} "
                            f"outside 1..{width}, the padded width (first: {bad[:5].tolist()})",
                            "a length counts the real positions of a sample; pad the arrays "
                            "to the longest")
        out[dim] = lengths.astype(np.int64)
    return out


def check_ranges(lengths: Mapping[str, np.ndarray], dims: Mapping[str, Mapping[str, int]],
                 role: str, source: str) -> None:
    """Refuses samples whose lengths lie outside the ranges of model.dims."""
    for dim, values in lengths.items():
        r = dims.get(dim)
        if r is None:
            continue
        bad = np.flatnonzero((values < r["min"]) | (values > r["max"]))
        if len(bad):
            raise DataError(
                f"{role} data {source}: {len(bad)} of {len(values)} samples have {dim} lengths "
                f"outside {r['min']}..{r['max']} (samples {bad[:5].tolist()}, lengths "
                f"{values[bad[:5]].tolist()})",
                f"truncate or drop those samples, or widen model.dims.{dim} in the spec")


def cut(arrays: Mapping[str, np.ndarray], axes: Mapping[str, Mapping[int, str]],
        index: np.ndarray | slice, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The samples at ``index``, each input cut to ``sizes`` along its named axes."""
    out = {}
    for name, a in arrays.items():
        part = a[index]
        cuts = [slice(None)] * part.ndim
        for axis, dim in axes.get(name, {}).items():
            if dim in sizes:
                cuts[axis] = slice(0, int(sizes[dim]))
        out[name] = np.ascontiguousarray(part[tuple(cuts)])
    return out


def equal_length_batches(lengths: Mapping[str, np.ndarray], n: int, batch: int
                         ) -> Iterator[tuple[np.ndarray, dict[str, int]]]:
    """(sample indices, sizes) of batches of at most ``batch`` samples of equal lengths."""
    if not lengths:
        for start in range(0, n, batch):
            yield np.arange(start, min(start + batch, n)), {}
        return
    names = sorted(lengths)
    keys = np.stack([lengths[d] for d in names], axis=1)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(map(tuple, keys.tolist())):
        groups.setdefault(key, []).append(i)
    for key in sorted(groups):
        idx = np.array(groups[key])
        for start in range(0, len(idx), batch):
            yield idx[start:start + batch], dict(zip(names, key))
