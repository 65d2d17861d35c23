"""Heads on top of a backbone feature: the embedding the album index stores, and a classifier."""
from __future__ import annotations

import torch
from torch import nn


class EmbeddingHead(nn.Module):
    """Linear projection to the d-dimensional expression embedding (d=64 as in SGM)."""

    def __init__(self, in_dim: int, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)


class TwoBranchHead(nn.Module):
    """Paper 001 two-branch FC head: one branch feeds the metric loss, the other the softmax, and a
    connecting layer joins them so the classifier also sees the metric features (eq 13)."""

    def __init__(self, in_dim: int, dim: int, n_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.metric = nn.Linear(in_dim, dim)
        self.cls = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True))
        self.connect = nn.Linear(dim + hidden, n_classes)  # eq 13: concat of both branches

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.metric(f)
        return z, self.connect(torch.cat([z, self.cls(f)], dim=1))
