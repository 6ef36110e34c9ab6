"""A wide MLP whose size is chosen by its arguments: the large-model example (over 2 GB of
weights with the defaults), seeded so that the same arguments give the same weights."""

from __future__ import annotations

from typing import Any


def build_model(features: int = 256, hidden: int = 17000, depth: int = 2, classes: int = 10,
                seed: int = 0) -> Any:
    """``depth`` hidden-to-hidden layers of ``hidden`` units: about 4 * depth * hidden**2 bytes."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(features, hidden), nn.ReLU()]
    for _ in range(depth):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, classes))
    return nn.Sequential(*layers).eval()
