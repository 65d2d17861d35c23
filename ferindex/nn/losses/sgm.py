"""Structured Gaussian Manifold loss (paper 003, eqs 1-4, Algorithm 1)."""
from __future__ import annotations

import torch
from torch import nn


class SGMLoss(nn.Module):
    """Each class is a Gaussian N(mu_j, sigma^2 I) around its batch mean; the Bayes posterior of the
    classes given an embedding is pushed towards the target posterior (one-hot or FER+ votes), so
    classes emerge as compact Gaussians and Euclidean distance is the retrieval metric.

    The paper weights the norm regulariser by 1; `norm_weight` defaults to 0.1 so that, with sigma
    fixed at 0.5, the regulariser does not pull classes closer than the Gaussians can separate."""

    def __init__(self, sigma: float = 0.5, n_classes: int | None = None, norm_weight: float = 0.1) -> None:
        super().__init__()
        self.sigma = sigma
        self.n_classes = n_classes
        self.norm_weight = norm_weight

    def forward(self, z: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                ids: torch.Tensor | None = None) -> torch.Tensor:
        n_classes = self.n_classes or (target.shape[1] if target is not None else int(y.max()) + 1)
        onehot = nn.functional.one_hot(y, n_classes).to(z.dtype)
        counts = onehot.sum(0)
        present = counts > 0
        norm = self.norm_weight * z.norm(dim=1).mean()  # Alg. 1 line 7: mean ||f(x)||_2 regulariser
        if int(present.sum()) < 2:  # one class: the posterior is trivially 1, only the regulariser acts
            return norm
        mu = (onehot.T @ z)[present] / counts[present, None]  # eq 3: class means of the batch
        d2 = torch.cdist(z, mu).pow(2)
        prior = (counts[present] / counts.sum()).log()
        post = torch.softmax(-d2 / (2 * self.sigma ** 2) + prior, dim=1)  # eqs 1-2: Bayes, sigma^2 I
        tgt = (target if target is not None else onehot)[:, present]
        tgt = tgt / tgt.sum(1, keepdim=True).clamp_min(1e-8)
        rep = (post - tgt).pow(2).sum(1).mean()  # eq 4: squared error between posteriors
        return rep + norm
