"""Parquet data files: one row per sample, one list column per model input.

Layout (write one with :func:`write_parquet`): an optional ``labels`` column of integers, and
the per-sample shape of each input as JSON in the schema metadata key ``trt_ops.shapes``, e.g.
``{"image": [1, 8, 8]}``. Without that key an input is read as a flat vector per sample.

Samples of different lengths: a shape may name one dynamic axis (``{"input_ids": ["sequence"]}``,
or ``[3, "height", 64]``); each row then holds as many values as its own length makes, the rows
are read padded with zeros to the longest, and their lengths come back as
``lengths.<axis>`` (see :mod:`trt_ops.data.ragged`). ``write_parquet`` writes such a file from
padded arrays and their ``lengths.<axis>`` arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trt_ops.errors import DataError

SHAPES_KEY = b"trt_ops.shapes"
LENGTHS = "lengths."


def read_parquet(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a Parquet data file in the layout above (``labels`` included if present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {p} as Parquet: {exc}",
                        "write it with trt_ops.data.sources.write_parquet") from exc
    meta = table.schema.metadata or {}
    try:
        shapes = json.loads(meta[SHAPES_KEY]) if SHAPES_KEY in meta else {}
    except ValueError as exc:
        raise DataError(f"{p.name}: schema metadata {SHAPES_KEY.decode()} is not JSON",
                        'store the per-sample shapes as JSON, e.g. {"image": [1, 8, 8]}') from exc
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and all(isinstance(d, (int, str)) and not isinstance(d, bool)
                                        for d in v) for v in shapes.values()):
        raise DataError(f"{p.name}: schema metadata {SHAPES_KEY.decode()} is not a mapping of "
                        "column names to per-sample shapes",
                        'store the per-sample shapes as JSON, e.g. {"image": [1, 8, 8]}')
    arrays = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        n = len(column)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) \
                or pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False)
            named = [d for d in shapes.get(name, []) if isinstance(d, str)]
            if named:
                arrays[name], lengths = _padded(column, shapes[name], p.name, name)
                key = LENGTHS + named[0]
                if key in arrays and not np.array_equal(arrays[key], lengths):
                    raise DataError(f"{p.name}: inputs naming axis {named[0]!r} differ in "
                                    "length within a sample",
                                    "give every input of a sample the same length on that axis")
                arrays[key] = lengths
                continue
            shape = tuple(shapes.get(name, [len(values) // max(n, 1)]))
            if values.size != n * int(np.prod(shape)):
                raise DataError(f"{p.name}: column {name!r} holds {values.size} values for {n} "
                                f"samples of shape {shape}",
                                "give every sample the same number of values, matching "
                                f"{SHAPES_KEY.decode()}")
            arrays[name] = values.reshape(n, *shape)
        else:
            arrays[name] = column.to_numpy(zero_copy_only=False)
    return arrays


def _padded(column: Any, shape: list[Any], source: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column of varying lengths along the one named axis of ``shape``, zero-padded."""
    if sum(isinstance(d, str) for d in shape) > 1:
        raise DataError(f"{source}: column {name!r} names several dynamic axes {shape}",
                        "Parquet rows can vary along one axis per input: pad the others")
    fixed = int(np.prod([d for d in shape if not isinstance(d, str)]))
    sizes = np.array([len(v) if v is not None else 0 for v in column.to_pylist()], np.int64)
    if (sizes % fixed).any() or (sizes == 0).any():
        raise DataError(f"{source}: column {name!r} has rows whose value counts are not whole "
                        f"multiples of the fixed axes {shape}",
                        "write each sample's values flattened, row-major, its length varying "
                        "along the named axis only")
    lengths = sizes // fixed
    width = int(lengths.max())
    full = [d if not isinstance(d, str) else width for d in shape]
    dtype = column.type.value_type.to_pandas_dtype()
    out = np.zeros((len(sizes), *full), dtype)
    for i, values in enumerate(column.to_pylist()):
        real = [d if not isinstance(d, str) else int(lengths[i]) for d in shape]
        region = tuple(slice(0, d) for d in real)
        out[i][region] = np.asarray(values, dtype).reshape(real)
    return out, lengths


def write_parquet(path: str | Path, arrays: dict[str, np.ndarray],
                  axes: dict[str, dict[int, str]] | None = None) -> Path:
    """Writes arrays (batch axis first; ``labels`` 1-D) in the layout :func:`read_parquet` reads.

    ``axes`` ({input: {axis: name}}) with ``lengths.<name>`` arrays writes each sample at its
    own length along that axis."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, shapes = {}, {}
    arrays = dict(arrays)
    lengths = {k[len(LENGTHS):]: arrays.pop(k) for k in list(arrays) if k.startswith(LENGTHS)}
    for name, named in (axes or {}).items():
        [(axis, dim)] = [(a, d) for a, d in named.items() if d in lengths]
        a = arrays.pop(name)
        rows = []
        for i, length in enumerate(lengths[dim]):
            cut = [slice(None)] * (a.ndim - 1)
            cut[axis - 1] = slice(0, int(length))
            rows.append(a[i][tuple(cut)].reshape(-1))
        columns[name] = pa.array(rows, type=pa.list_(pa.from_numpy_dtype(a.dtype)))
        shapes[name] = [dim if k == axis else d for k, d in enumerate(a.shape) if k > 0]
    for name, a in arrays.items():
        if a.ndim == 1:
            columns[name] = pa.array(a)
            continue
        shapes[name] = list(a.shape[1:])
        flat = a.reshape(len(a), -1)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
    table = pa.table(columns).replace_schema_metadata({SHAPES_KEY: json.dumps(shapes).encode()})
    pq.write_table(table, path)
    return Path(path)
