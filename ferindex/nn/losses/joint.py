"""Joint objective: cross-entropy on the classifier (hard labels or FER+ vote distributions), an
optional auxiliary classifier head on the embedding, and weighted metric losses on the embedding
(paper 000 eq 8 style), with fixed weights or paper 004's dynamic weights (eq 8) over all terms."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..weighting import DynamicLossWeights


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the vote distribution when given (FER+ 'probability' training), else
    against the hard label."""
    if target is None:
        return nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()


class JointLoss(nn.Module):
    """total = sum_k lambda_k * term_k over the terms "ce", each metric loss and each auxiliary
    head. Fixed weights: `weights` (1 for "ce" and anything not named). With `dynamic`, the
    lambdas come from DynamicLossWeights over *all* terms (they sum to its K), recorded after each
    training step; its history is part of `state_dict()`, so a resumed run continues it.

    `aux`: extra linear heads on the embedding, trained with cross-entropy on their own labels
    (-1 = none), e.g. the original FER2013 labels next to FER+; used in training only.
    `distill`: a term "distill" that matches a teacher's stored posteriors and embeddings
    (DistillationLoss), given per batch as `teacher=(probs, embeddings)`.
    With `soft_targets=False`, neither the CE nor the metric losses see vote distributions."""

    def __init__(self, metric_losses: dict[str, nn.Module], weights: dict[str, float] | None = None,
                 soft_targets: bool = True, aux: dict[str, nn.Module] | None = None,
                 dynamic: DynamicLossWeights | None = None, distill: nn.Module | None = None) -> None:
        super().__init__()
        self.metric_losses = nn.ModuleDict(metric_losses)
        self.aux = nn.ModuleDict(aux or {})
        self.distill = distill
        self.names = self.term_names(metric_losses, aux, distill)
        self.weights = {k: 1.0 for k in self.names} | (weights or {})
        self.soft_targets = soft_targets
        self.dynamic = dynamic
        if dynamic is not None and sorted(dynamic.names) != sorted(self.names):
            raise ValueError(f"dynamic weights over {dynamic.names}, but the terms are {self.names}")

    @staticmethod
    def term_names(metric_losses: dict[str, nn.Module], aux: dict[str, nn.Module] | None = None,
                   distill: nn.Module | None = None) -> list[str]:
        """The terms a JointLoss of these parts sums, in order: what DynamicLossWeights must cover."""
        return ["ce", *metric_losses, *(aux or {}), *(["distill"] if distill is not None else [])]

    def forward(self, z: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                ids: torch.Tensor | None = None, aux_labels: dict[str, torch.Tensor] | None = None,
                teacher: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = target if self.soft_targets else None
        terms = {"ce": soft_cross_entropy(logits, y, target)}
        for name, loss in self.metric_losses.items():
            terms[name] = loss(z, y, target=target, ids=ids)
        for name, head in self.aux.items():
            terms[name] = nn.functional.cross_entropy(head(z), aux_labels[name], ignore_index=-1)
        if self.distill is not None:
            if teacher is None:
                raise ValueError("this JointLoss distills: pass teacher=(probs, embeddings) for the batch")
            terms["distill"] = self.distill(z, logits, *teacher)
        lam = self.current_weights()
        total = sum(lam[k] * terms[k] for k in self.names)
        if self.dynamic is not None and self.training:  # eq 8 uses the losses of earlier steps
            self.dynamic.update({k: v.item() for k, v in terms.items()})
        return total, terms

    def current_weights(self) -> dict[str, float]:
        """The lambda of each term for the next step."""
        return self.dynamic.weights() if self.dynamic is not None else self.weights

    def get_extra_state(self) -> Any:
        return {"dynamic": self.dynamic.state() if self.dynamic is not None else None}

    def set_extra_state(self, state: Any) -> None:
        if self.dynamic is not None and state and state.get("dynamic"):
            self.dynamic.load_state(state["dynamic"])
