"""(N+M)-tuple clusters loss of paper 001 (Liu et al., CVPRW 2017): eq 3, Algorithm 1 (online
positive mining), identity-aware negatives, and the adaptive reference distance of eqs 4-7."""
from __future__ import annotations

import torch
from torch import nn

from ferindex.nn import miners


class AdaptiveThreshold(nn.Module):
    """H(f, c) = T(f, c) - D(f, c) with learned T and D (eqs 4-6).

    D(f, c) = (f - c)^T M (f - c), M = L^T L (eq 4; PSD by construction, L starts at I);
    T(f, c) = 1/2 f^T A f + 1/2 c^T A c + f^T B c + w^T (f + c) + b (eq 5) with A, B symmetric.
    A, B, w start at 0 and b at ``init``, so training starts from the fixed-T loss with squared
    Euclidean D. We learn T and M directly instead of the factorised A = L_A^T L_A,
    B = L_B^T L_B of eqs 7-8: the extracted text's sign assumptions there (A PSD, B NSD) contradict
    H = T - D, whereas eqs 4-6 are unambiguous.
    """

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.metric = nn.Parameter(torch.eye(dim))
        self.quad = nn.Parameter(torch.zeros(dim, dim))
        self.cross = nn.Parameter(torch.zeros(dim, dim))
        self.linear = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.tensor(float(init)))

    def distance(self, c: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """(A, B) matrix D(f_k, c_i), eq 4."""
        return miners.cross_sq_euclidean(c @ self.metric.T, f @ self.metric.T)

    def threshold(self, c: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """(A, B) matrix T(f_k, c_i), eq 5."""
        a = 0.5 * (self.quad + self.quad.T)
        b = 0.5 * (self.cross + self.cross.T)
        qc = 0.5 * ((c @ a) * c).sum(dim=1)
        qf = 0.5 * ((f @ a) * f).sum(dim=1)
        lin_c, lin_f = c @ self.linear, f @ self.linear
        return qc[:, None] + qf[None, :] + (c @ b) @ f.T + lin_c[:, None] + lin_f[None, :] + self.bias


def tuple_sets(y: torch.Tensor, ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive set incl. the query, negative set) per query, as (B, B) masks.

    Without identities: positives = same expression, negatives = other expressions.
    With identities (paper 001 Sec. 3, "identity-aware hard-negative mining"): negatives = other
    expressions of the *same person*, positives = the query plus same-expression images of *other*
    people. A query whose person has no other expression in the batch (or whose id is negative,
    meaning unknown) falls back to all other-expression samples; likewise a query with no
    same-expression image of another person falls back to all same-expression samples.
    """
    same_y = miners.same(y)
    pos, neg = same_y, ~same_y
    if ids is None:
        return pos, neg
    known = (ids >= 0)[:, None] & (ids >= 0)[None, :]
    same_id = miners.same(ids) & known
    eye = ~miners.off_diagonal(len(y), y.device)
    id_neg = neg & same_id
    id_pos = same_y & (~same_id | eye)
    # A row with only the query itself in id_pos has no positive from another person.
    neg = torch.where(id_neg.any(dim=1, keepdim=True), id_neg, neg)
    pos = torch.where((id_pos & ~eye).any(dim=1, keepdim=True), id_pos, pos)
    return pos, neg


class NMTupleClustersLoss(nn.Module):
    """Every sample is a query; its positive set P (incl. itself) and negative set N come from
    ``tuple_sets``. Per query (Algorithm 1): c+ = mean of P; drop positives farther from c+ than
    the nearest negative (the query itself is always kept, so M* >= 1 and the result does not
    depend on how ties are broken); recompute c+ from the kept M* positives; then (eq 3, with
    H = T - D as in eq 9)

        L = 1/M* sum_{kept} max(0, tau/2 - H(f+, c+)) + 1/N sum_N max(0, H(f-, c+) + tau/2).

    With ``dim=None`` T is the constant ``threshold`` and D the squared Euclidean distance, which
    is eq 3 verbatim. With ``dim`` given, T and D are learned (``AdaptiveThreshold``, eqs 4-6; add
    this module's parameters to the optimiser). We keep eq 3's separate means for the two sets;
    eq 10 pools them into one mean over N + M*, which would let a large N drown the positives.
    Queries without another positive or without a negative contribute nothing. Mining decisions
    are made without gradient; c+ itself carries gradient, as in the paper.
    """

    def __init__(self, dim: int | None = None, threshold: float = 2.0, tau: float = 2.0) -> None:
        super().__init__()
        self.half_margin = 0.5 * float(tau)
        self.threshold = float(threshold)
        self.adaptive = AdaptiveThreshold(dim, threshold) if dim is not None else None

    def _h(self, c: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """H(f_k, c_i) = T - D as an (A, B) matrix."""
        if self.adaptive is None:
            return self.threshold - miners.cross_sq_euclidean(c, f)
        return self.adaptive.threshold(c, f) - self.adaptive.distance(c, f)

    def _distance(self, c: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.adaptive is None:
            return miners.cross_sq_euclidean(c, f)
        return self.adaptive.distance(c, f)

    def forward(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        pos, neg = tuple_sets(y, ids)
        eye = ~miners.off_diagonal(len(y), y.device)
        valid = (pos & ~eye).any(dim=1) & neg.any(dim=1)
        if not bool(valid.any()):
            return miners.zero_loss(z)
        pos, neg = pos[valid], neg[valid]
        with torch.no_grad():  # Algorithm 1, steps 2-5
            c0 = _set_means(pos, z)
            d0 = self._distance(c0, z)
            nearest_neg = d0.masked_fill(~neg, float("inf")).min(dim=1, keepdim=True).values
            kept = pos & ((d0 <= nearest_neg) | eye[valid])
        c = _set_means(kept, z)  # step 6
        h = self._h(c, z)
        pull = torch.relu(self.half_margin - h)  # positives inside T - tau/2
        push = torch.relu(h + self.half_margin)  # negatives outside T + tau/2
        per_query = _row_mean(pull, kept) + _row_mean(push, neg)  # eq 3
        return per_query.mean()


def _set_means(mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(A, d) centres: mean of z over each mask row (rows are non-empty by construction)."""
    m = mask.to(z.dtype)
    return (m @ z) / m.sum(dim=1, keepdim=True)


def _row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(values.dtype)
    return (values * m).sum(dim=1) / m.sum(dim=1)
