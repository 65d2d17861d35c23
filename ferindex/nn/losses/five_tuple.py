"""Five-tuple deep multiple metric loss of paper 004 (DML-Net), eqs 1-6, adapted to FER data
that has no pose labels."""
from __future__ import annotations

import torch
from torch import nn

from ferindex.nn import miners


class FiveTupleLoss(nn.Module):
    """L = L^A + L^B, two batch-hard triplet losses sharing the anchor (eq 6).

    Distances are squared Euclidean (eq 1); each term is the hinge of eqs 2-5 averaged over the
    anchors that have both a positive and a negative of that kind (the paper sums without a hinge;
    see ``BatchHardTripletLoss``). With e = expression, s = identity, p = pose labels:

    - L^A, pose-based (eq 4) when ``poses`` is given: positive = same e, different p; negative =
      different e, same p. Without poses (the FER case) it is the plain expression triplet:
      positive = same e, negative = different e.
    - L^B, identity-based (eq 5), only when ``ids`` is given: positive = same e, different s;
      negative = different e, same s. This is what makes the embedding identity-invariant.
      Negative ids mean "unknown" and never match anything.

    So with neither ``ids`` nor ``poses`` this is exactly the batch-hard triplet loss (squared).
    """

    def __init__(self, margin_pose: float = 0.2, margin_id: float = 0.2, normalize: bool = False) -> None:
        super().__init__()
        self.margin_pose = float(margin_pose)
        self.margin_id = float(margin_id)
        self.normalize = normalize

    def forward(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
        *,
        poses: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dist = miners.pairwise_distance(z, squared=True, normalize=self.normalize)  # eq 1
        pos, neg = miners.label_masks(y)
        if poses is not None:
            pos, neg = _split_by(pos, neg, poses)
        loss = miners.masked_mean(*miners.batch_hard_triplet(dist, pos, neg, self.margin_pose), z)
        if ids is not None:
            id_pos, id_neg = _split_by(*miners.label_masks(y), ids)
            loss = loss + miners.masked_mean(*miners.batch_hard_triplet(dist, id_pos, id_neg, self.margin_id), z)
        return loss


def _split_by(pos: torch.Tensor, neg: torch.Tensor, nuisance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives must differ in the nuisance factor, negatives must share it (Algorithm 1,
    lines 3-6). A negative nuisance label is unknown: it never counts as shared, and we do not
    claim it differs either."""
    known = nuisance >= 0
    both = known[:, None] & known[None, :]
    shared = miners.same(nuisance) & both
    return pos & both & ~shared, neg & shared
