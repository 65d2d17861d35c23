"""Batch-hard triplet loss: the TripletLoss baseline of paper 003 and the online hardest-triplet
loss of paper 004 (eqs 2-4), with expression labels defining positives and negatives."""
from __future__ import annotations

import torch
from torch import nn

from ferindex.nn import miners


class BatchHardTripletLoss(nn.Module):
    """mean_i max(0, m + max_{p: y_p = y_i} D(i, p) - min_{n: y_n != y_i} D(i, n)).

    Anchors without a positive or without a negative in the batch contribute nothing. Paper 004
    uses squared Euclidean distances (eq 1) and writes the sum without a hinge (eq 4); we use the
    hinge (the margin is a "minimum margin", so satisfied triplets must not keep pushing) and the
    mean over valid anchors so the scale does not depend on the batch size.
    """

    def __init__(self, margin: float = 0.2, squared: bool = False, normalize: bool = False) -> None:
        super().__init__()
        self.margin = float(margin)
        self.squared = squared
        self.normalize = normalize

    def forward(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dist = miners.pairwise_distance(z, squared=self.squared, normalize=self.normalize)
        pos, neg = miners.label_masks(y)
        per_anchor, valid = miners.batch_hard_triplet(dist, pos, neg, self.margin)  # 004 eqs 2-4
        return miners.masked_mean(per_anchor, valid, z)
