"""Distances a person can read: "74 % similar" instead of "d=0.532".

A raw distance has no scale (it depends on the model, its metric and its training), so the
scale is learnt from the model's own labelled reference bank: pairs of bank faces with the
same expression and pairs with different expressions, as many of each, give the distance
distributions of "same expression" and "different expression". A logistic curve fitted to them
turns a distance into the probability that two faces at that distance show the same
expression, with equal prior odds: that probability, in percent, is the similarity. It is
monotone (closer is always more similar) and 50 % is where a pair is as likely to be a
different expression as the same: below that a hit is marked as a weak match.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAIRS = 20_000  # of each kind; the fit moves by < 1 % between seeds at this size
WEAK = 0.5


@dataclass(frozen=True)
class SimilarityScale:
    """p(same expression | distance d) = 1 / (1 + exp(a + b d)), b > 0."""

    a: float
    b: float

    def __call__(self, distance) -> np.ndarray:
        z = np.clip(self.a + self.b * np.asarray(distance, dtype=np.float64), -50, 50)
        return 1.0 / (1.0 + np.exp(z))

    def weak(self, distance) -> np.ndarray:
        """True where a hit is no more likely the same expression than a different one."""
        return self(distance) < WEAK

    def distance_at(self, similarity: float) -> float:
        """The distance at which the scale reads `similarity` (0..1)."""
        return float((np.log(1.0 / similarity - 1.0) - self.a) / self.b)


def pair_distances(X: np.ndarray, y: np.ndarray, metric: str = "euclidean", n: int = PAIRS,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(same-class distances, different-class distances), n random pairs of each."""
    from ferindex.analysis.knn import _prepare

    rng = np.random.default_rng(seed)
    X = _prepare(np.asarray(X, dtype=np.float32), metric)
    y = np.asarray(y)
    i, j = rng.integers(0, len(X), (2, 8 * n))
    keep = i != j
    i, j = i[keep], j[keep]
    same = y[i] == y[j]
    out = []
    for mask in (same, ~same):
        a, b = i[mask][:n], j[mask][:n]
        if metric == "cosine":
            d = 1.0 - np.einsum("ij,ij->i", X[a], X[b])
        else:
            d = np.linalg.norm(X[a] - X[b], axis=1)
        out.append(d.astype(np.float64))
    return out[0], out[1]


def fit_scale(same: np.ndarray, different: np.ndarray) -> SimilarityScale:
    """Logistic regression of same/different on the distance (equal class weights)."""
    from sklearn.linear_model import LogisticRegression

    if len(same) < 2 or len(different) < 2:
        raise ValueError("need distances of at least two same-class and two different-class pairs")
    d = np.concatenate([same, different])[:, None]
    t = np.r_[np.ones(len(same)), np.zeros(len(different))]
    lr = LogisticRegression(class_weight="balanced").fit(d, t)
    return SimilarityScale(a=-float(lr.intercept_[0]), b=-float(lr.coef_[0, 0]))


def model_scale(model) -> SimilarityScale:
    """The scale of an expression model, fitted on its reference bank."""
    X, y = model.reference_bank()
    return fit_scale(*pair_distances(X, y, model.metric))
