"""Pair/triplet mining helpers shared by the metric losses.

Every loss in ``ferindex.nn.losses`` builds the same few things from a batch: a pairwise
distance or similarity matrix, boolean masks saying which pairs are positives/negatives for
each anchor, the hardest pair per anchor, and a mean over the anchors that had valid pairs.
Keeping them here means the losses differ only in their formulas, not in their bookkeeping.

Conventions: matrices are (B, B) with row i = anchor i; masks are bool; an anchor whose mask
row is empty is *invalid* and must contribute nothing (never a NaN, never an ``inf``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def zero_loss(z: Tensor) -> Tensor:
    """A 0 that is still connected to the graph, so ``loss.backward()`` works on a batch with no
    valid pairs (e.g. all one class) instead of raising or producing NaN."""
    return z.sum() * 0.0


def cross_sq_euclidean(a: Tensor, b: Tensor) -> Tensor:
    """(A, B) matrix ||a_i - b_j||^2 via Gram products (clamped: rounding can make it < 0)."""
    d2 = (a * a).sum(dim=1)[:, None] + (b * b).sum(dim=1)[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_min(0.0)


def pairwise_sq_euclidean(z: Tensor) -> Tensor:
    """||z_i - z_j||^2 for all pairs of a batch."""
    return cross_sq_euclidean(z, z)


def pairwise_euclidean(z: Tensor, eps: float = 1e-12) -> Tensor:
    """||z_i - z_j||. The clamp keeps the sqrt's gradient finite on the diagonal and on
    duplicate points (d(sqrt)/dx is infinite at 0)."""
    return pairwise_sq_euclidean(z).clamp_min(eps).sqrt()


def pairwise_distance(z: Tensor, squared: bool = False, normalize: bool = False) -> Tensor:
    """Euclidean (or squared Euclidean) distances, optionally on L2-normalised embeddings."""
    if normalize:
        z = F.normalize(z, dim=1)
    return pairwise_sq_euclidean(z) if squared else pairwise_euclidean(z)


def cosine_similarity_matrix(z: Tensor) -> Tensor:
    """S = X X^T on L2-normalised rows (paper 000, S_ij = <x_i, x_j>)."""
    x = F.normalize(z, dim=1)
    return x @ x.T


def same(a: Tensor) -> Tensor:
    """(B, B) mask a_i == a_j for any per-sample label (expression, identity, pose)."""
    return a[:, None] == a[None, :]


def off_diagonal(n: int, device: torch.device | None = None) -> Tensor:
    """(n, n) mask that is False on the diagonal: an anchor is never its own positive."""
    return ~torch.eye(n, dtype=torch.bool, device=device)


def label_masks(y: Tensor) -> tuple[Tensor, Tensor]:
    """(positives, negatives): same label excluding self, and different label."""
    eq = same(y)
    return eq & off_diagonal(len(y), y.device), ~eq


def hardest_positive(dist: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the largest distance to a positive (paper 004 eq 2) and whether one exists.
    Invalid rows get 0 so that later arithmetic stays finite."""
    valid = pos.any(dim=1)
    v = dist.masked_fill(~pos, float("-inf")).max(dim=1).values
    return torch.where(valid, v, torch.zeros_like(v)), valid


def hardest_negative(dist: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the smallest distance to a negative (paper 004 eq 3) and whether one exists."""
    valid = neg.any(dim=1)
    v = dist.masked_fill(~neg, float("inf")).min(dim=1).values
    return torch.where(valid, v, torch.zeros_like(v)), valid


def batch_hard_triplet(dist: Tensor, pos: Tensor, neg: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Per-anchor hinge max(0, m + D(a, hardest p) - D(a, hardest n)) and the valid-anchor mask
    (anchors with at least one positive and one negative)."""
    d_pos, has_pos = hardest_positive(dist, pos)
    d_neg, has_neg = hardest_negative(dist, neg)
    return F.relu(margin + d_pos - d_neg), has_pos & has_neg


def masked_mean(values: Tensor, valid: Tensor, z: Tensor) -> Tensor:
    """Mean of ``values`` over valid anchors; the graph-connected zero when there are none."""
    if not bool(valid.any()):
        return zero_loss(z)
    return values[valid].mean()
