"""Calibration and validation data: loading, and the checks every stage relies on.

A data file holds one array per model input, batch axis first: a ``.npz`` keyed by input name
(plus an optional ``labels`` array, and ``lengths.<axis>`` arrays for samples of different
lengths, see :mod:`trt_ops.data.ragged`), or a ``.npy`` for a single-input model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from trt_ops.data import ragged
from trt_ops.data.sources import existing_data_file, local_data_path
from trt_ops.errors import DataError
from trt_ops.store.digest import sha256_file

LABELS = "labels"


@dataclasses.dataclass
class Dataset:
    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    path: Path
    sha256: str
    # each sample's real size per named axis (padded arrays), and the inputs' named axes
    lengths: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    axes: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def head(self, n: int) -> Dataset:
        return Dataset({k: v[:n] for k, v in self.arrays.items()},
                       None if self.labels is None else self.labels[:n], self.path, self.sha256,
                       {k: v[:n] for k, v in self.lengths.items()}, self.axes)

    @property
    def ragged(self) -> bool:
        """Whether samples differ in length along some axis."""
        return any(len(np.unique(v)) > 1 for v in self.lengths.values())

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(sample indices, feeds): batches of at most ``size`` samples of equal lengths, each
        cut to its real length (consecutive samples where all have the same length)."""
        for index, sizes in ragged.equal_length_batches(self.lengths, len(self), size):
            yield index, ragged.cut(self.arrays, self.axes, index, sizes)


# a file's first bytes say what it is: read nothing whose format is not the one its name claims
_MAGIC = {".npz": (b"PK\x03\x04", b"PK\x05\x06"), ".npy": (b"\x93NUMPY",)}
_WRITE_HOW = "write it with numpy.savez (one array per input) or numpy.save"


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy, .npz or .parquet file, a local path or a file:// or s3:// URI."""
    p = existing_data_file(path)
    suffix = p.suffix.lower()
    if suffix in _MAGIC:
        with open(p, "rb") as f:
            head = f.read(8)
        if not head.startswith(_MAGIC[suffix]):
            kind = "a zip archive of .npy arrays" if suffix == ".npz" else "a NumPy array file"
            raise DataError(f"data file {p} is not {kind} (it starts with {head[:8]!r})", _WRITE_HOW)
        try:
            if suffix == ".npz":
                with np.load(p, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}  # read inside: a member may be truncated
            return {"": np.load(p, allow_pickle=False)}
        except Exception as exc:  # (bad bytes raise zipfile, zlib, EOF or value errors)
            raise DataError(f"cannot read {p}, it is truncated or corrupt: "
                            f"{type(exc).__name__}: {str(exc)[:200]}", _WRITE_HOW) from exc
    if suffix == ".parquet":
        from trt_ops.data.parquet import read_parquet

        return read_parquet(p)
    raise DataError(f"unsupported data file {p.name}",
                    "use .npz (one array per input), .npy or .parquet (see trt_ops.data.parquet)")


def load_dataset(path: str | Path, inputs: Sequence[InputSpecLike], role: str,
                 dims: Mapping[str, Mapping[str, int]] | None = None) -> Dataset:
    """Loads and checks a data file against the model's inputs; ``role`` names it in errors.
    With ``dims`` (model.dims' ranges), samples whose lengths fall outside are refused."""
    p = local_data_path(path)
    arrays = read_arrays(p)
    labels = arrays.pop(LABELS, None)
    given = ragged.pop_lengths(arrays)
    if "" in arrays:  # a bare .npy: the one input of a single-input model
        if len(inputs) != 1:
            raise DataError(f"{role} data {p.name} is a single array but the model has "
                            f"{len(inputs)} inputs", "save an .npz with one array per input name")
        arrays = {inputs[0].name: arrays.pop("")}
    check_arrays(arrays, inputs, role, p.name)
    lengths = ragged.sample_lengths(arrays, inputs, given, role, p.name)
    if dims:
        ragged.check_ranges(lengths, dims, role, p.name)
    if labels is not None and len(labels) != len(next(iter(arrays.values()))):
        raise DataError(f"{role} data {p.name}: {len(labels)} labels for "
                        f"{len(next(iter(arrays.values())))} samples",
                        "give exactly one label per sample")
    return Dataset(arrays, labels, p, sha256_file(p), lengths, ragged.axes_of(inputs))


class InputSpecLike:  # structural type of trt_ops.spec.InputSpec, kept import-free
    name: str
    shape: list[int | str]
    dtype: str
    dynamic_axes: dict[int, str]


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
        want = tuple(spec.shape[1:])  # sizes, or names of dynamic axes (any width)
        if a.ndim == 0 or len(a) == 0:
            raise DataError(f"{role} data {source}: input {spec.name!r} is empty",
                            f"provide at least one sample of shape (N, {', '.join(map(str, want))})")
        if a.ndim != len(spec.shape) or any(isinstance(w, int) and w != d
                                            for w, d in zip(want, a.shape[1:])):
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
    np.savez(path, **d.arrays, **{ragged.PREFIX + k: v for k, v in d.lengths.items()})
    return Path(path)
