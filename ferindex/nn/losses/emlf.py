"""Expression Metric Loss Function (EMLF) of paper 000 (Yu & Bai, PI&DML), eqs 3-7."""
from __future__ import annotations

import torch
from torch import nn

from ferindex.nn import miners


class EMLFLoss(nn.Module):
    """Hard-pair mining on cosine similarities followed by the EMLF pair loss.

    Mining (eqs 3-4, the multi-similarity rule of the paper's ref. [28]): for anchor i keep
    negatives j with S_ij > min_{k in P(i)} S_ik - eps and positives j with
    S_ij < max_{k in N(i)} S_ik + eps. The extracted text of eq 4 reads "S+ > max S- + eps",
    which would keep the *easy* positives; the paper's prose ("samples of the same kind with low
    similarity") and ref. [28] say "<", which is what we implement. The thresholds are
    selections, so they are computed without gradient.

    Loss (eqs 5-7): J_P = log sum_{P_i} (-S + sqrt(S^2 + 1)), J_N = log sum_{N_i} (S + sqrt(S^2 + 1)),
    averaged over anchors that kept at least one positive and one negative (eq 7 divides by the
    batch size m; anchors with nothing to mine would make log(0) = -inf there). We evaluate it as
    logsumexp(-asinh S) and logsumexp(asinh S), which is the same number because
    S + sqrt(S^2 + 1) = exp(asinh S), but never takes the log of a tiny difference.
    The value can be negative (a single positive with S = 1 gives log(sqrt(2) - 1) < 0).
    """

    def __init__(self, eps: float = 0.1, normalize: bool = True) -> None:
        super().__init__()
        self.eps = float(eps)
        self.normalize = normalize

    def forward(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = miners.cosine_similarity_matrix(z) if self.normalize else z @ z.T
        pos, neg = miners.label_masks(y)
        with torch.no_grad():  # eqs 3-4: which pairs are hard
            min_pos = s.masked_fill(~pos, float("inf")).min(dim=1, keepdim=True).values
            max_neg = s.masked_fill(~neg, float("-inf")).max(dim=1, keepdim=True).values
            hard_neg = neg & (s > min_pos - self.eps)
            hard_pos = pos & (s < max_neg + self.eps)
            valid = hard_pos.any(dim=1) & hard_neg.any(dim=1)
        if not bool(valid.any()):
            return miners.zero_loss(z)
        a = torch.asinh(s[valid])
        j_p = torch.logsumexp((-a).masked_fill(~hard_pos[valid], float("-inf")), dim=1)  # eq 5
        j_n = torch.logsumexp(a.masked_fill(~hard_neg[valid], float("-inf")), dim=1)  # eq 6
        return (j_p + j_n).mean()  # eq 7
