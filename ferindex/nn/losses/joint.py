"""Joint objective: cross-entropy on the classifier (hard labels or FER+ vote distributions) plus
weighted metric losses on the embedding (paper 000 eq 8 style)."""
from __future__ import annotations

import torch
from torch import nn


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the vote distribution when given (FER+ 'probability' training), else
    against the hard label."""
    if target is None:
        return nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()


class JointLoss(nn.Module):
    """CE + sum_k lambda_k * metric_k. Returns the total and each term (for logging and for the
    dynamic weighting of paper 004, which updates `weights` between steps)."""

    def __init__(self, metric_losses: dict[str, nn.Module], weights: dict[str, float] | None = None,
                 soft_targets: bool = True) -> None:
        super().__init__()
        self.metric_losses = nn.ModuleDict(metric_losses)
        self.weights = {k: 1.0 for k in metric_losses} | (weights or {})
        self.soft_targets = soft_targets

    def forward(self, z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {"ce": soft_cross_entropy(logits, y, target if self.soft_targets else None)}
        for name, loss in self.metric_losses.items():
            terms[name] = loss(z, y, target=target, ids=ids)
        total = terms["ce"] + sum(self.weights[k] * terms[k] for k in self.metric_losses)
        return total, terms
