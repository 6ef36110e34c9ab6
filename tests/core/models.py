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


def trap_cnn() -> nn.Module:
    """A small CNN made to fail its int8 gate on purpose, in two known layers.

    The second and fourth convolutions each hold, in every output channel, one weight of 1000
    on an input channel that is always zero (the convolution before them has zero weights for
    it). In float that weight multiplies zero; in int8 its per-channel scale (1000/127) rounds
    every other weight of the channel to zero, so those two layers, and only they, wreck the
    output. Kept float, they make the model pass.
    """
    torch.manual_seed(0)
    convs = [nn.Conv2d(3, 8, 3, padding=1)] + [nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)]
    head = nn.Linear(8 * 8 * 8, 10)  # 8x8 inputs, flattened: every position counts
    with torch.no_grad():
        for layer in (*convs, head):  # no biases: the output must depend on the input
            layer.bias.zero_()
        for feeding in (convs[0], convs[2]):  # channel 7 of their output: always zero
            feeding.weight[7] = 0.0
        for trap in (convs[1], convs[3]):
            trap.weight[:, 7, 1, 1] = 1000.0
    layers: list[nn.Module] = []
    for conv in convs:
        layers += [conv, nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), head).eval()
