"""Knowledge distillation from a teacher's stored outputs: its class posteriors (Hinton et al.
2015) and the shape of its embedding space (relational KD, Park et al. 2019). The teacher may be
an ensemble with another embedding width, so the embedding is matched through pairwise distances
within the batch, not coordinate by coordinate; the metric structure is what KNN search reads."""
from __future__ import annotations

import torch
from torch import nn


def soften(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """p ** (1/T), renormalised: the softmax of log(p) / T, i.e. the teacher's logits at
    temperature T (a stored probability fixes its logits up to a per-row constant)."""
    logp = torch.log(p.clamp_min(1e-8)) / temperature
    return torch.softmax(logp, dim=1)


def normalized_distances(z: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances divided by their mean over distinct pairs (Park et al. eq 4):
    a scale-free description of the batch, comparable across embedding spaces."""
    d = torch.cdist(z, z)
    off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return d / d[off].mean().clamp_min(1e-8)


class DistillationLoss(nn.Module):
    """T^2 KL(teacher_T || student_T) on the class posteriors (Hinton et al. eq 2, with the T^2
    gradient scale) + `relation_weight` x Huber(psi_D(student) - psi_D(teacher)) over the batch's
    pairs (Park et al. eqs 4-5). `temperature` and `relation_weight` are the two choices to ablate;
    relation_weight 0 is plain logit distillation."""

    def __init__(self, temperature: float = 2.0, relation_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.relation_weight = relation_weight

    def forward(self, z: torch.Tensor, logits: torch.Tensor, teacher_p: torch.Tensor,
                teacher_z: torch.Tensor | None = None) -> torch.Tensor:
        t = self.temperature
        target = soften(teacher_p, t)
        kl = (target * (torch.log(target.clamp_min(1e-8)) - torch.log_softmax(logits / t, dim=1))).sum(1).mean()
        loss = kl * t * t
        if self.relation_weight and teacher_z is not None and len(z) > 1:
            off = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
            rel = nn.functional.smooth_l1_loss(normalized_distances(z)[off], normalized_distances(teacher_z)[off])
            loss = loss + self.relation_weight * rel
        return loss
