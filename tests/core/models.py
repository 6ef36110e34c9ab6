"""Tiny models for the export tests: importable factories, as a user's package would have."""

from __future__ import annotations

import torch
from torch import nn


def tiny(hidden: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3)).eval()


class Eigen(nn.Module):
    """Uses an op that ONNX has no equivalent for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvals(x @ x.transpose(-1, -2)).real


def eigen() -> nn.Module:
    return Eigen()


class Noisy(nn.Module):
    """Random in forward(): the exported graph cannot match PyTorch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


def noisy() -> nn.Module:
    return Noisy()


def not_a_module() -> str:
    return "oops"
