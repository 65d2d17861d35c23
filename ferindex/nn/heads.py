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
    """Paper 001 two-branch FC head. The expression-classification (EC) branch FC_2 feeds the
    softmax; the metric-learning (ML) branch's first layer FC_3 and FC_2 are joined by the
    connecting layer, FC_4 = P^T [FC_2; FC_3] (eq 13), and FC_4 goes on to the ML branch's second
    layer, whose output is the embedding. So the classifier's features reach the metric branch,
    not the other way round."""

    def __init__(self, in_dim: int, dim: int, n_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.ec = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True))  # FC_2
        self.ml = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True))  # FC_3
        self.connect = nn.Linear(2 * hidden, hidden)  # eq 13: P^T [FC_2; FC_3] = FC_4
        self.metric = nn.Linear(hidden, dim)  # second layer of the ML branch
        self.cls = nn.Linear(hidden, n_classes)  # softmax on the EC branch

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ec = self.ec(f)
        z = self.metric(torch.relu(self.connect(torch.cat([ec, self.ml(f)], dim=1))))
        return z, self.cls(ec)
