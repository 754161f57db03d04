"""A small model and dataset with the Trainer contract (forward(**batch) -> .loss, .losses), for engine tests."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


class ToyRegressor(nn.Module):
    """2-block MLP regressor; forward draws from the global RNG (like MAE masking) so resume must restore it."""

    def __init__(self, dim: int = 8, hidden: int = 16):
        super().__init__()
        self.embed = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList([nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden)) for _ in range(2)])
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, y, **unused):
        keep = (torch.rand(x.shape, device=x.device) > 0.25).float()  # random input masking
        h = self.embed(x * keep)
        for layer in self.layers:
            h = h + torch.tanh(layer(h))
        err = (self.head(h).squeeze(-1) - y) ** 2
        losses = {"mse": err.mean(), "mae": err.sqrt().mean()}
        return SimpleNamespace(loss=losses["mse"], losses=losses)


class ToyData:
    """Map-style dataset of (x, y) pairs with y a fixed linear function of x; `nan_at` items carry NaN targets."""

    def __init__(self, n: int = 256, dim: int = 8, seed: int = 0, nan_at: tuple[int, ...] = ()):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, dim)
        self.y[list(nan_at)] = float("nan")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def collate(samples: list[dict]) -> dict:
    """Stack toy samples into a batch dict."""
    return {"x": torch.stack([s["x"] for s in samples]), "y": torch.stack([s["y"] for s in samples])}
