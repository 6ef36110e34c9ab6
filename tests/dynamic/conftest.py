"""Fixtures of the dynamic-axes tests: a tiny transformer's spec and data of varied lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.core.conftest import s3_bucket, s3_endpoint  # noqa: F401 - fixtures used here too

INPUTS = [{"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64"},
          {"name": "attention_mask", "shape": ["batch", "sequence"], "dtype": "int64"}]
DIMS = {"batch": {"min": 1, "opt": 8, "max": 8}, "sequence": {"min": 3, "opt": 12, "max": 16}}


def token_data(n: int, seed: int, low: int = 3, high: int = 16) -> dict[str, np.ndarray]:
    """Padded token ids of varied lengths, their mask, and ``lengths.sequence``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, n).astype(np.int64)
    ids = np.zeros((n, int(lengths.max())), np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, 64, length)
    mask = (np.arange(ids.shape[1])[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "lengths.sequence": lengths}


def encoder_spec(folder: Path, **changes: object) -> Path:
    doc = {"name": "tiny-encoder",
           "model": {"factory": "tests.core.models:tiny_encoder", "inputs": INPUTS,
                     "outputs": ["embedding", "scores"], "dims": DIMS, "task": "embedding"},
           "data": {"calibration": "calibration.npz", "validation": "validation.npz",
                    "ranges": {"input_ids": [0, 63], "attention_mask": [0, 1]},
                    "min_samples": 20},
           "calibration": {"samples": 32},
           "precisions": ["int8"],
           "thresholds": {"int8": {"min_cosine": 0.95}},
           "benchmark": {"batch_sizes": [1, 8], "dims": {"sequence": [4, 16]}, "iterations": 2,
                         "warmup": 1, "torch_compile": False},
           "store": "store"}
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        holder = doc
        for p in parents:
            holder = holder.setdefault(p, {})
        holder[last] = value
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    np.savez(folder / "calibration.npz", **token_data(40, seed=1))
    np.savez(folder / "validation.npz", **token_data(40, seed=2))
    encoder_spec(folder)
    return folder


@pytest.fixture(scope="session")
def encoder_run(encoder_dir: Path):
    """The whole pipeline once on the tiny encoder: int8, dynamic batch and sequence."""
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    return run_pipeline(load_spec(encoder_dir / "pipeline.yaml"))


@pytest.fixture(scope="session")
def encoder_onnx(encoder_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny encoder as a user's own ONNX file (the export stage's output, copied)."""
    import shutil

    from trt_ops.store import open_store

    path = tmp_path_factory.mktemp("user-onnx") / "encoder.onnx"
    shutil.copyfile(open_store(encoder_run.store).fetch(encoder_run.export.artifact("onnx")), path)
    return path
