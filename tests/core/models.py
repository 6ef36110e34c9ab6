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


class TinyEncoder(nn.Module):
    """A one-layer transformer encoder with the parts that trouble int8: an attention mask
    added as the float minimum, Softmax, LayerNorm, GELU; mean-pooled, normalized output named
    like a value inside the exported graph (``embedding``) and a second output."""

    def __init__(self, vocab: int = 64, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        x = self.norm1(self.embed(input_ids))
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) / x.shape[-1] ** 0.5
        bias = (1.0 - attention_mask[:, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        x = self.norm2(x + self.out(torch.softmax(scores + bias, dim=-1) @ v))
        x = x + self.down(nn.functional.gelu(self.up(x)))
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=1), self.head(pooled)


def tiny_encoder() -> nn.Module:
    return TinyEncoder().eval()
