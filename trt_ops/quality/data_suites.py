"""Great Expectations suites over the calibration and validation sets, built here in code.

Each set becomes a per-sample frame (one row per sample: per input its shape, dtype, min, max
and whether all its values are finite; a sha256 of the sample's bytes; its label), and a suite
checks it against the model's input signature and the spec:

- every input's per-sample shape and dtype match the signature; no NaN or Inf;
- values within ``data.ranges`` (both sets) or, by default, within the calibration set's range
  widened by 10% of its span (validation set: int8 scales clip what calibration never saw);
- each sample's length along every dynamic axis (``lengths.<axis>``, else the array's width)
  within the axis's range in ``model.dims``;
- at least ``data.min_samples`` samples; where labels exist, every class present;
- no validation sample also in the calibration set.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trt_ops.data import ragged
from trt_ops.data.datasets import LABELS, read_arrays
from trt_ops.data.sources import local_data_path
from trt_ops.errors import DataError
from trt_ops.spec import InputSpec

RANGE_MARGIN = 0.1  # of the calibration span, before a validation value counts as out of range


FIXES = {
    "shape": "reshape the array to (N, {shape}), batch axis first",
    "dtype": "convert it with array.astype('{dtype}')",
    "finite": "drop or repair those samples; calibrating on them would corrupt the scales",
    "range": "fix the scaling of those samples (e.g. the same normalization as in training), "
             "or widen data.ranges in the spec",
    "length": "truncate or drop those samples, or widen model.dims.{dim} in the spec",
    "count": "provide at least {n} samples per set, or lower data.min_samples",
    "classes": "include samples of every class, or set data.classes",
    "label_range": "labels must be class indices 0..{top}",
    "overlap": "remove those samples from one of the sets: validating on calibration data "
               "hides quantization errors",
}


@dataclasses.dataclass
class DataCheckResult:
    passed: bool
    failures: list[str]  # one line per failed expectation: which, where, what was observed
    reports: dict[str, Path]  # role -> GX Data Docs page of that set's validation
    samples: dict[str, int] = dataclasses.field(default_factory=dict)
    expectations: int = 0


def read_raw(path: str | Path, inputs: Sequence[InputSpec], role: str
             ) -> tuple[dict[str, np.ndarray], np.ndarray | None, dict[str, np.ndarray]]:
    """A data file's arrays, labels and sample lengths with only the structure checked (shape,
    dtype, values and lengths against their ranges are GX's job)."""
    p = local_data_path(path)
    arrays = read_arrays(p)
    labels = arrays.pop(LABELS, None)
    given = ragged.pop_lengths(arrays)
    if "" in arrays and len(inputs) == 1:  # a bare .npy: the one input of a single-input model
        arrays = {inputs[0].name: arrays.pop("")}
    expected = {i.name for i in inputs}
    if set(arrays) != expected:
        raise DataError(f"{role} data {p.name} has arrays {sorted(arrays)}, the model's inputs are "
                        f"{sorted(expected)}",
                        f"save one array per model input, named {sorted(expected)} (and optionally "
                        f"'{LABELS}')")
    scalars = sorted(k for k, a in arrays.items() if a.ndim == 0)
    if scalars:
        raise DataError(f"{role} data {p.name}: {scalars} hold a single value, not samples",
                        "give each input an array with the batch axis first, (N, ...)")
    counts = {len(a) for a in arrays.values()}
    if labels is not None:
        counts.add(len(labels))
    if len(counts) > 1:
        raise DataError(f"{role} data {p.name}: inputs and labels have different sample counts "
                        f"{sorted(counts)}", "give every input (and the labels) one entry per sample")
    return arrays, labels, ragged.sample_lengths(arrays, inputs, given, role, p.name)


def _sample_hashes(arrays: dict[str, np.ndarray]) -> list[str]:
    n = len(next(iter(arrays.values())))
    rows = [np.ascontiguousarray(a).reshape(n, int(np.prod(a.shape[1:]))) for _, a in sorted(arrays.items())]
    out = []
    for i in range(n):
        h = hashlib.sha256()
        for r in rows:
            h.update(r[i].tobytes())
        out.append(h.hexdigest())
    return out


def _finite_min_max(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: all values finite, and min and max over the finite values (NaN if none)."""
    flat = a.reshape(len(a), int(np.prod(a.shape[1:])))  # also for zero samples
    if flat.shape[1] == 0:  # an empty array: nothing to compare; the row count fails instead
        nan = np.full(len(a), np.nan)
        return np.ones(len(a), bool), nan, nan
    if a.dtype == bool:
        flat = flat.astype(np.uint8)
    if not np.issubdtype(flat.dtype, np.number):
        nan = np.full(len(a), np.nan)
        return np.ones(len(a), bool), nan, nan
    if not np.issubdtype(flat.dtype, np.floating):
        return np.ones(len(a), bool), flat.min(axis=1).astype(float), flat.max(axis=1).astype(float)
    ok = np.isfinite(flat)
    finite = ok.all(axis=1)
    if finite.all():
        return finite, flat.min(axis=1).astype(float), flat.max(axis=1).astype(float)
    lo = np.where(ok, flat, np.inf).min(axis=1).astype(float)
    hi = np.where(ok, flat, -np.inf).max(axis=1).astype(float)
    lo[~np.isfinite(lo)], hi[~np.isfinite(hi)] = np.nan, np.nan
    return finite, lo, hi


def _real_samples(arrays: dict[str, np.ndarray], lengths: dict[str, np.ndarray],
                  axes: dict[str, dict[int, str]]) -> list[dict[str, np.ndarray]]:
    """Every sample cut to its real lengths (one batch of one each)."""
    n = len(next(iter(arrays.values())))
    return [ragged.cut(arrays, axes, slice(i, i + 1), {d: int(v[i]) for d, v in lengths.items()})
            for i in range(n)]


def _ragged_columns(arrays: dict[str, np.ndarray], lengths: dict[str, np.ndarray],
                    axes: dict[str, dict[int, str]]) -> dict[str, Any]:
    """The per-sample columns of samples of different lengths, computed sample by sample."""
    samples = _real_samples(arrays, lengths, axes)
    columns: dict[str, Any] = {}
    for name, array in arrays.items():
        stats = [_finite_min_max(s[name]) for s in samples]
        columns[f"{name}__shape"] = ["x".join(map(str, s[name].shape[1:])) for s in samples]
        columns[f"{name}__dtype"] = str(array.dtype)
        columns[f"{name}__finite"] = np.array([bool(f[0]) for f in stats])
        columns[f"{name}__min"] = np.array([float(f[1][0]) for f in stats])
        columns[f"{name}__max"] = np.array([float(f[2][0]) for f in stats])
    hashes = []
    for s in samples:
        h = hashlib.sha256()
        for _, a in sorted(s.items()):
            h.update(np.ascontiguousarray(a).tobytes())
        hashes.append(h.hexdigest())
    columns["sha256"] = hashes
    return columns


def sample_frame(arrays: dict[str, np.ndarray], labels: np.ndarray | None,
                 lengths: dict[str, np.ndarray] | None = None,
                 axes: dict[str, dict[int, str]] | None = None) -> pd.DataFrame:
    """One row per sample: what the suites check, derived from the arrays (each sample at its
    real lengths where they differ)."""
    n = len(next(iter(arrays.values())))
    lengths = lengths or {}
    columns: dict[str, Any] = {"sample": np.arange(n)}
    for dim, values in lengths.items():
        columns[f"{dim}__length"] = values
    if any(len(np.unique(v)) > 1 for v in lengths.values()):
        columns.update(_ragged_columns(arrays, lengths, axes or {}))
        if labels is not None:
            columns["label"] = labels
        return pd.DataFrame(columns)
    for name, a in arrays.items():
        finite, lo, hi = _finite_min_max(a)
        columns[f"{name}__shape"] = "x".join(map(str, a.shape[1:]))
        columns[f"{name}__dtype"] = str(a.dtype)
        columns[f"{name}__finite"] = finite
        columns[f"{name}__min"], columns[f"{name}__max"] = lo, hi
    columns["sha256"] = _sample_hashes(arrays)
    if labels is not None:
        columns["label"] = labels
    return pd.DataFrame(columns)


def _shape_regex(spec: InputSpec) -> str:
    return "^" + "x".join(str(d) if d > 0 else r"\d+" for d in spec.sample_shape) + "$"


def derived_ranges(frame: pd.DataFrame, inputs: Sequence[InputSpec]) -> dict[str, tuple[float, float]]:
    """Each input's calibration range widened by RANGE_MARGIN of its span."""
    out = {}
    for spec in inputs:
        lo, hi = frame[f"{spec.name}__min"].min(), frame[f"{spec.name}__max"].max()
        if np.isfinite(lo) and np.isfinite(hi):
            margin = max((hi - lo) * RANGE_MARGIN, 1e-6)
            out[spec.name] = (float(lo - margin), float(hi + margin))
    return out


def suite(frame: pd.DataFrame, inputs: Sequence[InputSpec], *, ranges: dict[str, tuple[float, float]],
          min_samples: int, classes: int | None,
          dims: Mapping[str, Mapping[str, int]] | None = None) -> list[Any]:
    """The expectations for one set's frame; each carries its remedy in ``meta["fix"]``."""
    import great_expectations as gx

    E = gx.expectations
    out = [E.ExpectTableRowCountToBeBetween(min_value=min_samples,
                                            meta={"fix": FIXES["count"].format(n=min_samples)})]
    for spec in inputs:
        col = f"{spec.name}__"
        shape = ", ".join(str(d) if d > 0 else "any" for d in spec.sample_shape)
        out += [
            E.ExpectColumnValuesToMatchRegex(column=col + "shape", regex=_shape_regex(spec),
                                             meta={"fix": FIXES["shape"].format(shape=shape)}),
            E.ExpectColumnValuesToBeInSet(column=col + "dtype", value_set=[spec.dtype],
                                          meta={"fix": FIXES["dtype"].format(dtype=spec.dtype)}),
            E.ExpectColumnValuesToBeInSet(column=col + "finite", value_set=[True],
                                          meta={"fix": FIXES["finite"]}),
        ]
        if spec.name in ranges:
            lo, hi = ranges[spec.name]
            out += [E.ExpectColumnValuesToBeBetween(column=col + "min", min_value=lo,
                                                    meta={"fix": FIXES["range"]}),
                    E.ExpectColumnValuesToBeBetween(column=col + "max", max_value=hi,
                                                    meta={"fix": FIXES["range"]})]
    for dim, r in (dims or {}).items():
        if f"{dim}__length" in frame:
            out.append(E.ExpectColumnValuesToBeBetween(
                column=f"{dim}__length", min_value=r["min"], max_value=r["max"],
                meta={"fix": FIXES["length"].format(dim=dim)}))
    if "label" in frame:
        top = classes - 1 if classes else int(frame["label"].max())
        if classes:
            out.append(E.ExpectColumnValuesToBeBetween(
                column="label", min_value=0, max_value=top,
                meta={"fix": FIXES["label_range"].format(top=top)}))
        out.append(E.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=list(range(top + 1)), meta={"fix": FIXES["classes"]}))
    if "in_calibration" in frame:
        out.append(E.ExpectColumnValuesToBeInSet(column="in_calibration", value_set=[False],
                                                 meta={"fix": FIXES["overlap"]}))
    return out


def failure_lines(role: str, result: Any) -> list[str]:
    """'role: expectation(column): observed; expected ...; fix: ...' per failed expectation."""
    lines = []
    for r in result.results:
        if r.success:
            continue
        cfg, res = r.expectation_config, r.result
        kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "column")}
        if len(str(kwargs)) > 200:
            kwargs = {k: (f"{len(v)} values" if isinstance(v, list) else v) for k, v in kwargs.items()}
        where = f"({cfg.kwargs['column']})" if "column" in cfg.kwargs else ""
        if "unexpected_count" in res:
            samples = [int(i["sample"]) for i in res.get("partial_unexpected_index_list") or []]
            values = [v.item() if hasattr(v, "item") else v for v in res.get("partial_unexpected_list") or []]
            seen = (f"{res['unexpected_count']} of {res['element_count']} samples fail "
                    f"(samples {samples}, values {values})")
        elif res.get("partial_missing_list") is not None:
            seen = f"missing {res['partial_missing_list']}"
        else:
            seen = f"observed {res.get('observed_value')}"
        lines.append(f"{role}: {cfg.type}{where}: {seen}; expected {kwargs}; fix: {cfg.meta.get('fix', '')}")
    return lines


def check_datasets(calibration: str | Path, validation: str | Path, inputs: Sequence[InputSpec], *,
                   ranges: dict[str, tuple[float, float]] | None = None, min_samples: int = 100,
                   classes: int | None = None, report_dir: Path | None = None,
                   dims: Mapping[str, Mapping[str, int]] | None = None) -> DataCheckResult:
    """Runs both sets' suites; the result lists every failed expectation."""
    from trt_ops.quality.gate import run_suite
    from trt_ops.reports.pages import data_docs_page

    axes = ragged.axes_of(inputs)
    frames = {role: sample_frame(*read_raw(path, inputs, role), axes=axes)
              for role, path in (("calibration", calibration), ("validation", validation))}
    frames["validation"]["in_calibration"] = frames["validation"]["sha256"].isin(
        set(frames["calibration"]["sha256"]))
    failures, reports, count = [], {}, 0
    for role, frame in frames.items():
        role_ranges = dict(ranges) if ranges else (
            derived_ranges(frames["calibration"], inputs) if role == "validation" else {})
        expectations = suite(frame, inputs, ranges=role_ranges, min_samples=min_samples,
                             classes=classes, dims=dims)
        count += len(expectations)
        result = run_suite(frame, expectations, f"{role}_data")
        failures += failure_lines(role, result)
        if report_dir is not None:
            reports[role] = data_docs_page(result, Path(report_dir) / f"{role}_data_docs.html")
    return DataCheckResult(not failures, failures, reports,
                           {role: len(f) for role, f in frames.items()}, count)
