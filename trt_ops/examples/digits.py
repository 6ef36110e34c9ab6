"""The README's example: a small CNN trained in seconds on scikit-learn's 8x8 digits.

``prepare(folder)`` trains it (once), writes the calibration and validation sets (the
digits test split, with labels) and a pipeline spec, and returns the spec's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import numpy as np

SEED = 0


def build_model() -> torch.nn.Module:  # noqa: F821 - torch imported lazily
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def load_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test split of the digits images as (N, 1, 8, 8) float32 in [0, 1]."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y))  # type: ignore[return-value]


def train(x: np.ndarray, y: np.ndarray, epochs: int = 15) -> torch.nn.Module:  # noqa: F821
    import torch

    torch.manual_seed(SEED)
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def spec_document(folder: str | Path, *, relative: bool = False) -> dict:
    """The example's pipeline spec: paths relative to ``folder`` (for its YAML) or absolute.

    Engines are registered as ``digits-cnn`` in a local MLflow registry (SQLite) in the folder.
    """
    folder = Path(folder).expanduser().resolve()

    def path(name: str) -> str:
        return name if relative else str(folder / name)

    return {
        "name": "digits-cnn",
        "model": {"factory": "trt_ops.examples.digits:build_model", "state_dict": path("model.pt"),
                  "inputs": [{"name": "image", "shape": ["batch", 1, 8, 8], "dtype": "float32"}],
                  "outputs": ["logits"], "task": "classification"},
        "data": {"calibration": path("calibration.npz"), "validation": path("validation.npz")},
        "calibration": {"samples": 512},
        "precisions": ["int8", "fp16"],
        "store": path("store"),
        "thresholds": {"int8": {"top1_agreement": 0.98, "accuracy_drop": 0.02},
                       "fp16": {"top1_agreement": 0.99}},
        "benchmark": {"batch_sizes": [1, 32], "iterations": 50, "warmup": 10},
        "registry": {"model_name": "digits-cnn",
                     "tracking_uri": f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"},
    }


def prepare(folder: str | Path) -> Path:
    """Writes model.pt, calibration.npz, validation.npz and pipeline.yaml into ``folder``."""
    import numpy as np
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlflow").mkdir(exist_ok=True)
    x_train, x_test, y_train, y_test = load_splits()
    weights = folder / "model.pt"
    if not weights.exists():  # trained once: the same weights give cache hits on re-runs
        model = train(x_train, y_train)
        with torch.inference_mode():
            acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        print(f"trained the digits CNN: test accuracy {acc:.3f}")
        torch.save(model.state_dict(), weights)
    np.savez(folder / "calibration.npz", image=x_train)
    np.savez(folder / "validation.npz", image=x_test, labels=y_test)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec_document(folder, relative=True), sort_keys=False))
    return path
