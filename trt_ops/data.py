"""Calibration and validation data: loading, and the checks every stage relies on.

A data file holds one array per model input, batch axis first: a ``.npz`` keyed by input name
(plus an optional ``labels`` array), or a ``.npy`` for a single-input model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from trt_ops.data_sources import local_data_path
from trt_ops.digest import sha256_file
from trt_ops.errors import DataError

LABELS = "labels"


@dataclasses.dataclass
class Dataset:
    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    path: Path
    sha256: str

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def head(self, n: int) -> "Dataset":
        return Dataset({k: v[:n] for k, v in self.arrays.items()},
                       None if self.labels is None else self.labels[:n], self.path, self.sha256)

    def batch(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {k: v[start:stop] for k, v in self.arrays.items()}


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy, .npz or .parquet file, a local path or a file:// or s3:// URI."""
    p = local_data_path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist", "check the data paths in the spec")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if suffix == ".npy":
            return {"": np.load(p, allow_pickle=False)}
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {p}: {exc}",
                        "write it with numpy.savez (one array per input) or numpy.save") from exc
    if suffix == ".parquet":
        from trt_ops.data_sources import read_parquet

        return read_parquet(p)
    raise DataError(f"unsupported data file {p.name}",
                    "use .npz (one array per input), .npy or .parquet (see trt_ops.data_sources)")


def load_dataset(path: str | Path, inputs: Sequence["InputSpecLike"], role: str) -> Dataset:
    """Loads and checks a data file against the model's inputs; ``role`` names it in errors."""
    p = local_data_path(path)
    arrays = read_arrays(p)
    labels = arrays.pop(LABELS, None)
    if "" in arrays:  # a bare .npy: the one input of a single-input model
        if len(inputs) != 1:
            raise DataError(f"{role} data {p.name} is a single array but the model has "
                            f"{len(inputs)} inputs", "save an .npz with one array per input name")
        arrays = {inputs[0].name: arrays.pop("")}
    check_arrays(arrays, inputs, role, p.name)
    if labels is not None and len(labels) != len(next(iter(arrays.values()))):
        raise DataError(f"{role} data {p.name}: {len(labels)} labels for "
                        f"{len(next(iter(arrays.values())))} samples",
                        "give exactly one label per sample")
    return Dataset(arrays, labels, p, sha256_file(p))


class InputSpecLike:  # structural type of trt_ops.spec.InputSpec, kept import-free
    name: str
    shape: tuple[int, ...]
    dtype: str


def check_arrays(arrays: dict[str, np.ndarray], inputs: Sequence[InputSpecLike], role: str,
                 source: str) -> None:
    """Shape, dtype, emptiness and finiteness of each input's array; one clear error each."""
    expected = {i.name for i in inputs}
    missing, extra = expected - set(arrays), set(arrays) - expected
    if missing:
        raise DataError(f"{role} data {source} lacks arrays for inputs {sorted(missing)} "
                        f"(it has {sorted(arrays)})",
                        f"save one array per model input, named {sorted(expected)}")
    if extra:
        raise DataError(f"{role} data {source} has arrays {sorted(extra)} that are not model inputs",
                        f"keep only {sorted(expected)} (and optionally '{LABELS}')")
    counts = set()
    for spec in inputs:
        a = arrays[spec.name]
        want = tuple(spec.shape[1:])
        if a.ndim == 0 or len(a) == 0:
            raise DataError(f"{role} data {source}: input {spec.name!r} is empty",
                            f"provide at least one sample of shape (N, {', '.join(map(str, want))})")
        if tuple(a.shape[1:]) != want:
            raise DataError(
                f"{role} data {source}: input {spec.name!r} has samples of shape "
                f"{tuple(a.shape[1:])}, the model expects {want} (array shape {a.shape})",
                f"reshape the array to (N, {', '.join(map(str, want))}), batch axis first")
        if str(a.dtype) != spec.dtype:
            raise DataError(f"{role} data {source}: input {spec.name!r} is {a.dtype}, "
                            f"the model expects {spec.dtype}",
                            f"convert it with array.astype('{spec.dtype}')")
        if np.issubdtype(a.dtype, np.floating):
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
            if bad.any():
                idx = np.flatnonzero(bad)
                raise DataError(
                    f"{role} data {source}: input {spec.name!r} has NaN or Inf in "
                    f"{len(idx)} of {len(a)} samples (first: {idx[:5].tolist()})",
                    "drop or repair those samples; calibrating on them would corrupt the scales")
        counts.add(len(a))
    if len(counts) > 1:
        raise DataError(f"{role} data {source}: inputs have different sample counts {sorted(counts)}",
                        "give every input the same number of samples")


def write_npz(path: str | Path, dataset: Dataset, n: int | None = None) -> Path:
    """Writes (the first ``n`` samples of) a dataset as .npz, the calibrators' input format."""
    d = dataset.head(n) if n else dataset
    np.savez(path, **d.arrays)
    return Path(path)
