"""The shared timing cache: keys, round trips, damage, and racing saves.

The merge of two caches is TensorRT's ``ITimingCache.combine``, which needs TensorRT and a GPU;
tests named ``..._fake_combine`` stand in a union of JSON sets for it, so the storage and race
logic runs here. The real combine runs in test_gpu_end_to_end.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_ops.engines.tensorrt.timing_cache import TimingCacheStore, slug
from trt_ops.store import FileStore

GPU, VERSION = "NVIDIA H100 80GB HBM3", "10.16.1.11"


def tactics(*names: str) -> bytes:
    return json.dumps(sorted(names)).encode()


def union(stored: bytes, ours: bytes) -> bytes:
    """Stands in for ITimingCache.combine: the tactics of both caches."""
    return tactics(*set(json.loads(stored)) | set(json.loads(ours)))


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def cache(store: FileStore) -> TimingCacheStore:
    return TimingCacheStore(store, GPU, VERSION)


def test_one_cache_per_gpu_product_and_tensorrt_version(store: FileStore) -> None:
    assert cache(store).pointer_key == "timing-caches/nvidia-h100-80gb-hbm3/trt-10.16.1.11/current.json"
    assert TimingCacheStore(store, "NVIDIA H200", VERSION).prefix != cache(store).prefix
    assert TimingCacheStore(store, GPU, "11.4.0.106").prefix != cache(store).prefix
    assert slug("NVIDIA A100-SXM4-80GB") == "nvidia-a100-sxm4-80gb"


def test_first_build_finds_none_and_the_second_finds_the_first_ones_fake_combine(store: FileStore) -> None:
    assert cache(store).load() is None
    cache(store).save(tactics("conv1", "conv2"), union)
    assert json.loads(cache(store).load() or b"") == ["conv1", "conv2"]


def test_saving_keeps_what_another_build_stored_meanwhile_fake_combine(store: FileStore) -> None:
    """Builds A and B start from the same cache; B saves first; A's save must not drop B's tactics."""
    cache(store).save(tactics("shared"), union)
    start_a = cache(store).load()
    cache(store).save(tactics("shared", "from_b"), union)        # B finishes first
    assert start_a is not None
    cache(store).save(union(start_a, tactics("from_a")), union)  # A saves what it built
    assert json.loads(cache(store).load() or b"") == ["from_a", "from_b", "shared"]


def test_a_commit_between_reread_and_commit_is_merged_again_fake_combine(store: FileStore) -> None:
    """B commits while A is writing its merged blob: A sees the pointer moved and merges again."""
    cache(store).save(tactics("shared"), union)
    real_put_bytes = store.put_bytes
    raced = []

    def put_bytes_while_b_commits(key: str, data: bytes):  # type: ignore[no-untyped-def]
        artifact = real_put_bytes(key, data)
        if not raced:
            raced.append(key)
            store.put_bytes = real_put_bytes  # type: ignore[method-assign]
            cache(store).save(tactics("from_b"), union)
            store.put_bytes = put_bytes_while_b_commits  # type: ignore[method-assign]
        return artifact

    store.put_bytes = put_bytes_while_b_commits  # type: ignore[method-assign]
    cache(store).save(tactics("from_a"), union)
    assert raced
    assert json.loads(cache(store).load() or b"") == ["from_a", "from_b", "shared"]


def test_saving_nothing_new_leaves_the_stored_cache_alone_fake_combine(store: FileStore) -> None:
    first = cache(store).save(tactics("a", "b"), union)
    assert cache(store).save(tactics("a"), union) == first


def test_a_damaged_cache_is_ignored_and_then_replaced_fake_combine(store: FileStore) -> None:
    saved = cache(store).save(tactics("a"), union)
    Path(saved.uri.removeprefix("file://")).write_bytes(b"garbage")  # damaged after it was written
    assert cache(store).load() is None  # caught by sha256, never handed to TensorRT
    cache(store).save(tactics("b"), union)
    assert json.loads(cache(store).load() or b"") == ["b"]
