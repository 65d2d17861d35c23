"""Nearest-neighbour search (FAISS, exact) and the K-nearest-neighbour expression classifier.

SGM (paper 003, Fig. 5) classifies by K=11 nearest neighbours in the embedding space; the vote
distribution doubles as the confidence. Search is exact (IndexFlatL2) and done in query chunks so
28k references x 3k queries stays fast and the (queries x k) result fits in memory.
"""
from __future__ import annotations

from typing import Sequence

import faiss
import numpy as np
from sklearn.base import BaseEstimator

from .calibration import blend, reweight

METRICS = ("euclidean", "cosine")
_CHUNK = 4096  # queries per FAISS call: bounds the temporary distance blocks


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous, and L2-normalised for cosine (then L2 order == cosine order)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {x.shape}")
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.ascontiguousarray(x / np.maximum(norms, 1e-12))
    return x


def search(ref: np.ndarray, query: np.ndarray, k: int, metric: str = "euclidean"
           ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference rows of every query row: (distances (nq,k), indices (nq,k)).

    Distances are Euclidean (not squared; for cosine, the chord distance of unit vectors).
    """
    ref, query = _prepare(ref, metric), _prepare(query, metric)
    if ref.shape[1] != query.shape[1]:
        raise ValueError(f"dimension mismatch: references {ref.shape[1]}, queries {query.shape[1]}")
    if not 1 <= k <= len(ref):
        raise ValueError(f"k={k} must be between 1 and the number of references ({len(ref)})")
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    dist = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    for s in range(0, len(query), _CHUNK):
        d, i = index.search(query[s:s + _CHUNK], k)
        dist[s:s + _CHUNK], idx[s:s + _CHUNK] = d, i
    return np.sqrt(np.maximum(dist, 0.0)), idx


def self_neighbours(emb: np.ndarray, k: int, metric: str = "euclidean"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest *other* rows of each row of `emb` (leave-one-out retrieval).

    Searches k+1 and drops the row itself; with exact duplicates the row may not come back
    first (ties), so when it is absent the farthest of the k+1 is dropped instead.
    """
    n = len(emb)
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} must be between 1 and n-1 ({n - 1}) for within-set retrieval")
    dist, idx = search(emb, emb, k + 1, metric)
    keep = idx != np.arange(n)[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False
    return dist[keep].reshape(n, k), idx[keep].reshape(n, k)


def vote(dist: np.ndarray, labels: np.ndarray, n_classes: int, weights: str = "distance",
         sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Normalised vote distribution (nq, n_classes) from neighbour distances and label indices.

    "distance" weights are 1/d as in scikit-learn; a query with exact matches (d == 0) gets its
    votes from those matches only, so a duplicate of a labelled face takes that label.
    """
    if weights == "uniform":
        w = np.ones_like(dist, dtype=np.float64)
    elif weights == "distance":
        with np.errstate(divide="ignore"):
            w = 1.0 / dist.astype(np.float64)
        exact = np.isinf(w)
        rows = exact.any(axis=1)
        w[rows] = exact[rows].astype(np.float64)
    else:
        raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}")
    if sample_weight is not None:
        w = w * sample_weight
    proba = np.zeros((len(dist), n_classes), dtype=np.float64)
    np.add.at(proba, (np.repeat(np.arange(len(dist)), dist.shape[1]), labels.ravel()), w.ravel())
    total = proba.sum(axis=1, keepdims=True)
    return (proba / np.where(total > 0, total, 1.0)).astype(np.float32)


class KNNClassifier(BaseEstimator):
    """Distance-weighted KNN over a labelled bank (scikit-learn style: fit -> self, state ends in _).

    To combine the shipped reference bank with faces the user labelled, fit on the
    concatenation (see `combine_banks`); `sample_weight` lets user labels count more;
    `class_weight` (one per class, in `classes` order) corrects the bank's class prior, after
    the votes are blended with the model's softmax at `softmax_weight` (then `predict_proba`
    needs the raw softmax of the same faces; analysis/calibration.py says why).
    """

    def __init__(self, k: int = 11, weights: str = "distance", metric: str = "euclidean",
                 class_weight: np.ndarray | None = None, softmax_weight: float = 0.0) -> None:
        self.k = k
        self.weights = weights
        self.metric = metric
        self.class_weight = class_weight  # prior correction per class (analysis/calibration.py)
        self.softmax_weight = softmax_weight

    def fit(self, X: np.ndarray, y: Sequence, classes: Sequence | None = None,
            sample_weight: np.ndarray | None = None) -> "KNNClassifier":
        X = _prepare(X, self.metric)
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
        if len(X) == 0:
            raise ValueError("cannot fit a KNN classifier on an empty bank")
        self.classes_ = np.asarray(classes) if classes is not None else np.unique(y)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = sorted({str(v) for v in y.tolist() if v not in lookup})
        if unknown:
            raise ValueError(f"labels not in classes: {', '.join(unknown[:5])}")
        self.y_ = np.fromiter((lookup[v] for v in y.tolist()), dtype=np.int64, count=len(y))
        self.X_ = X
        self.sample_weight_ = (None if sample_weight is None
                               else np.asarray(sample_weight, dtype=np.float64))
        return self

    def kneighbors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the min(k, bank size) nearest bank rows."""
        return search(self.X_, X, min(self.k, len(self.X_)), self.metric)

    def predict_proba(self, X: np.ndarray, softmax: np.ndarray | None = None) -> np.ndarray:
        """Class posteriors of X: the vote shares, blended with `softmax` (the model's raw
        softmax of X, needed when softmax_weight > 0) and prior-corrected."""
        dist, idx = self.kneighbors(X)
        sw = None if self.sample_weight_ is None else self.sample_weight_[idx]
        votes = vote(dist, self.y_[idx], len(self.classes_), self.weights, sw)
        return reweight(blend(votes, softmax, self.softmax_weight), self.class_weight)

    def predict(self, X: np.ndarray, softmax: np.ndarray | None = None) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X, softmax), axis=1)]


def combine_banks(bank_X: np.ndarray, bank_y: np.ndarray, user_X: np.ndarray, user_y: np.ndarray,
                  user_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate the shipped reference bank with user-labelled faces -> (X, y, sample_weight).

    A user's labels describe the faces in their own album, so they may deserve more than one vote
    each (user_weight > 1) against a bank of tens of thousands of FER faces.
    """
    X = np.concatenate([np.asarray(bank_X, np.float32), np.asarray(user_X, np.float32)])
    y = np.concatenate([np.asarray(bank_y), np.asarray(user_y)])
    w = np.concatenate([np.ones(len(bank_X)), np.full(len(user_X), float(user_weight))])
    return X, y, w
