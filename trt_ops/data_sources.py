"""Where data files come from: local paths, ``file://`` and ``s3://`` URIs, and Parquet files.

Parquet layout (write one with :func:`write_parquet`): one row per sample, one column per model
input holding the sample flattened (a list or fixed-size list column), an optional ``labels``
column of integers, and the per-sample shape of each input as JSON in the schema metadata key
``trt_ops.shapes``, e.g. ``{"image": [1, 8, 8]}``. Without that key an input is read as a flat
vector per sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from trt_ops.errors import DataError

SHAPES_KEY = b"trt_ops.shapes"


def local_data_path(uri: str | Path) -> Path:
    """A local file holding the data at ``uri``; s3 objects are downloaded once into the cache."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(parsed.netloc + parsed.path if parsed.netloc else parsed.path)
    if parsed.scheme != "s3":
        return Path(text)
    from trt_ops.store import S3Store, blob_cache_dir

    store = S3Store(f"s3://{parsed.netloc}")
    key = parsed.path.lstrip("/")
    try:
        head = store._call(f"lookup of {text}", store.client.head_object, Bucket=store.bucket, Key=key)
    except FileNotFoundError:
        raise DataError(f"data object {text} does not exist",
                        "upload it first, or fix the data URI in the spec") from None
    # the ETag changes with the content, so a re-uploaded file is fetched again
    tag = hashlib.sha256(f"{text}\0{head.get('ETag', '')}".encode()).hexdigest()[:24]
    dest = blob_cache_dir() / "data" / tag / Path(key).name  # keeps the suffix the reader needs
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            store._download(text, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def read_parquet(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a Parquet data file in the layout above (``labels`` included if present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {p} as Parquet: {exc}",
                        "write it with trt_ops.data_sources.write_parquet") from exc
    meta = table.schema.metadata or {}
    try:
        shapes = json.loads(meta[SHAPES_KEY]) if SHAPES_KEY in meta else {}
    except ValueError as exc:
        raise DataError(f"{p.name}: schema metadata {SHAPES_KEY.decode()} is not JSON",
                        'store the per-sample shapes as JSON, e.g. {"image": [1, 8, 8]}') from exc
    arrays = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        n = len(column)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) \
                or pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False)
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


def write_parquet(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Writes arrays (batch axis first; ``labels`` 1-D) in the layout :func:`read_parquet` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, shapes = {}, {}
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
