"""Medoids, top-k summaries and N-face album summaries (SGM paper 003, section 4: "the medoid is
the object in the group closest to the centroid; the Top-k of a group contains the k objects
nearer to the medoid")."""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
from sklearn.base import BaseEstimator


def _as_2d(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"expected a non-empty 2-D array of vectors, got shape {X.shape}")
    return X


def medoid(X: np.ndarray) -> int:
    """Row index of the member nearest the mean: a real face that stands for the whole group."""
    X = _as_2d(X)
    return int(np.argmin(((X - X.mean(axis=0)) ** 2).sum(axis=1)))


def top_k_near_medoid(X: np.ndarray, k: int = 16) -> np.ndarray:
    """Indices of the k members nearest the medoid, the medoid first (ties by index)."""
    X = _as_2d(X)
    m = medoid(X)
    d = ((X - X[m]) ** 2).sum(axis=1)
    d[m] = -1.0
    return np.argsort(d, kind="stable")[:k]


def allocate(sizes: Sequence[int], n: int) -> np.ndarray:
    """Split n picks across groups proportionally to size (largest remainder), at least one per
    group when n allows (else the largest groups get one each), never more than a group holds."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(min(n, sizes.sum()))
    out = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    if n <= len(sizes):
        out[order[:n]] = 1
        return out
    out[:] = np.minimum(1, sizes)
    while out.sum() < n:
        room = sizes - out
        open_ = room > 0
        quota = (n - out.sum()) * sizes * open_ / sizes[open_].sum()
        add = np.minimum(np.floor(quota).astype(np.int64), room)
        if add.sum() == 0:  # remainders only: one extra to the open group with the largest quota
            add[np.argmax(np.where(open_, quota, -1.0))] = 1
        out += add
    return out


def spread(X: np.ndarray, m: int) -> np.ndarray:
    """m member indices: the medoid, then farthest-point picks so the faces differ from each
    other (a summary of near-duplicates tells the user nothing new)."""
    X = _as_2d(X)
    picks = [medoid(X)]
    d = ((X - X[picks[0]]) ** 2).sum(axis=1)
    while len(picks) < min(m, len(X)):
        nxt = int(np.argmax(d))
        picks.append(nxt)
        d = np.minimum(d, ((X - X[nxt]) ** 2).sum(axis=1))
    return np.asarray(picks, dtype=np.int64)


class AlbumSummary(BaseEstimator):
    """Pick n faces that cover an album's groups (expressions, sub-classes or people).

    fit(X, groups) sets `selected_` (row indices into X, grouped, largest group first),
    `groups_` (the group of each pick) and `allocation_` ({group: count}).
    """

    def __init__(self, n: int = 12) -> None:
        self.n = n

    def fit(self, X: np.ndarray, groups: Sequence[Hashable]) -> "AlbumSummary":
        X = _as_2d(X)
        groups = np.asarray(groups)
        if groups.shape != (len(X),):
            raise ValueError(f"expected {len(X)} group labels, got shape {groups.shape}")
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        counts = allocate(sizes, self.n)
        selected, picked_groups = [], []
        for g in np.argsort(-sizes, kind="stable"):
            if counts[g] == 0:
                continue
            members = np.flatnonzero(inverse == g)
            selected.extend(members[spread(X[members], counts[g])].tolist())
            picked_groups.extend([names[g]] * int(counts[g]))
        self.selected_ = np.asarray(selected, dtype=np.int64)
        self.groups_ = np.asarray(picked_groups)
        self.allocation_ = {names[g].item(): int(counts[g]) for g in range(len(names)) if counts[g]}
        return self
