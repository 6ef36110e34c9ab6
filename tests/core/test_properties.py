"""Property tests: whatever bytes or documents the spec parser and the data readers get, they
either parse or raise the project's own error with a problem and a fix, never another exception."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trt_ops.errors import DataError, SpecError

BOUNDED = settings(max_examples=50, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# YAML-ish values: scalars of every kind the YAML loader yields, nested a little
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
_keys = st.sampled_from(["name", "model", "data", "store", "precisions", "targets", "thresholds",
                         "calibration", "benchmark", "registry", "export", "serving", "x"])
_model_keys = st.sampled_from(["factory", "state_dict", "program", "registered", "onnx", "inputs",
                               "outputs", "dims", "kwargs", "task"])


def _clear(exc: Exception) -> None:
    assert exc.problem.strip() and exc.fix.strip(), f"no problem or no fix: {exc!r}"


@pytest.fixture(scope="module")
def valid_spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {"name": "p", "model": {"factory": "trt_ops.examples.digits:build_model",
                                   "inputs": [{"name": "image", "shape": ["batch", 1, 8, 8]}]},
            "data": {"calibration": "/c.npz", "validation": "/v.npz"}}


@BOUNDED
@given(doc=st.one_of(_values, st.dictionaries(_keys, _values, max_size=6)))
@example(doc={"[": None})  # a key that looked like pydantic's tag of a validator: IndexError
def test_spec_parser_takes_any_document(doc) -> None:
    from trt_ops.spec import parse_spec

    try:
        parse_spec(doc, "/")
    except SpecError as exc:
        _clear(exc)


@BOUNDED
@given(model=st.dictionaries(_model_keys, _values, max_size=5),
       top=st.dictionaries(_keys, _values, max_size=3))
def test_spec_parser_takes_any_model_section(valid_spec, model, top) -> None:
    from trt_ops.spec import parse_spec

    doc = {**valid_spec, **top, "model": {**valid_spec["model"], **model}}
    try:
        parse_spec(doc, "/")
    except SpecError as exc:
        _clear(exc)


@BOUNDED
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("latin-1"))))
@example(text="name: 2024-13-45\n")  # a date YAML's loader rejects with ValueError
@example(text="[" * 3000)  # nesting deeper than the loader's recursion
def test_spec_loader_takes_any_file(tmp_path: Path, text: str) -> None:
    from trt_ops.spec import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_spec(path)
    except SpecError as exc:
        _clear(exc)


@BOUNDED
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0),
       valid=st.booleans())
def test_spec_loader_takes_truncated_and_corrupted_specs(tmp_path: Path, valid_spec, cut, flip,
                                                         valid) -> None:
    from trt_ops.spec import load_spec

    data = bytearray(yaml.safe_dump(valid_spec).encode())
    data = data[:cut % (len(data) + 1)]
    if data and not valid:
        data[flip % len(data)] ^= 0x5A
    path = tmp_path / "spec.yaml"
    path.write_bytes(bytes(data))
    try:
        load_spec(path)
    except SpecError as exc:
        _clear(exc)


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, image=np.zeros((4, 1, 8, 8), np.float32), labels=np.arange(4))
    return buf.getvalue()


def _parquet_bytes(tmp: Path) -> bytes:
    from trt_ops.data.parquet import write_parquet

    write_parquet(tmp / "d.parquet", {"image": np.zeros((4, 1, 8, 8), np.float32),
                                      "labels": np.arange(4)})
    return (tmp / "d.parquet").read_bytes()


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("good")
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 2), np.float32))
    return {".npz": _npz_bytes(), ".npy": buf.getvalue(), ".parquet": _parquet_bytes(tmp)}


@BOUNDED
@given(suffix=st.sampled_from([".npz", ".npy", ".parquet"]), cut=st.integers(min_value=0),
       flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=4))
def test_data_readers_take_truncated_and_corrupted_files(tmp_path: Path, good_files, suffix, cut,
                                                         flips) -> None:
    """A good file cut short anywhere and with bytes flipped: read, or one clear DataError."""
    from trt_ops.data.datasets import read_arrays

    data = bytearray(good_files[suffix])
    data = data[:cut % (len(data) + 1)]
    for where, mask in flips:
        if data:
            data[where % len(data)] ^= mask
    path = tmp_path / f"data{suffix}"
    path.write_bytes(bytes(data))
    try:
        arrays = read_arrays(path)
    except DataError as exc:
        _clear(exc)
    else:
        assert all(isinstance(a, np.ndarray) for a in arrays.values())


@BOUNDED
@given(suffix=st.sampled_from([".npz", ".npy", ".parquet"]), data=st.binary(max_size=2000))
def test_data_readers_take_random_bytes(tmp_path: Path, suffix, data) -> None:
    from trt_ops.data.datasets import read_arrays

    path = tmp_path / f"data{suffix}"
    path.write_bytes(data)
    try:
        read_arrays(path)
    except DataError as exc:
        _clear(exc)


@BOUNDED
@given(cut=st.integers(min_value=0), flips=st.lists(
    st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=3))
def test_dataset_loader_takes_corrupted_npz(tmp_path: Path, cut, flips) -> None:
    """The full load (arrays checked against the model's inputs) on a damaged file."""
    from trt_ops.data.datasets import load_dataset
    from trt_ops.spec import InputSpec

    data = bytearray(_npz_bytes())
    data = data[:len(data) - cut % 64] if cut % 3 else data
    for where, mask in flips:
        data[where % len(data)] ^= mask
    path = tmp_path / "d.npz"
    path.write_bytes(bytes(data))
    try:
        load_dataset(path, [InputSpec(name="image", shape=["batch", 1, 8, 8])], "calibration")
    except DataError as exc:
        _clear(exc)
