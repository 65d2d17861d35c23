"""Batch samplers. SGM estimates class means per batch, so it wants n samples of each of c classes
(paper 003: batch = n x c); identity-aware mining (paper 001) wants several expressions of the same
person in one batch."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class ClassBalancedBatchSampler:
    """Batches of `n_per_class` samples from each of `classes_per_batch` classes (all classes when
    None), sampled with replacement inside rare classes. `len()` = batches per epoch.

    `temper` > 0 gives class c a share of each batch proportional to count_c ** temper (every
    class keeps at least 2 faces, so SGM always has its class means): 0 is the paper's equal
    n x c batch, 1 the natural frequencies. With FER+'s 60:1 imbalance, equal shares repeat
    each contempt face ~20 times an epoch; temper 0.5 keeps all classes in every batch at ~5."""

    def __init__(self, labels: np.ndarray, n_per_class: int, classes_per_batch: int | None = None,
                 n_batches: int | None = None, seed: int = 0, temper: float = 0.0) -> None:
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.n = n_per_class
        self.c = classes_per_batch or len(self.by_class)
        self.n_batches = n_batches or len(labels) // (self.n * self.c)
        self.rng = np.random.default_rng(seed)
        self.temper = temper
        if temper > 0 and self.c != len(self.by_class):
            raise ValueError("temper > 0 needs every class in every batch (classes_per_batch=None)")
        share = np.array([len(ix) for ix in self.by_class], float) ** temper
        self.sizes = self._split(self.n * self.c, share / share.sum())

    @staticmethod
    def _split(total: int, share: np.ndarray, floor: int = 2) -> np.ndarray:
        """Integer class sizes summing to `total`, proportional to `share`, each >= `floor`."""
        sizes = np.maximum(floor, np.floor(share * total)).astype(int)
        while sizes.sum() < total:
            sizes[np.argmax(share * total - sizes)] += 1
        while sizes.sum() > total:
            sizes[np.argmax(np.where(sizes > floor, sizes - share * total, -np.inf))] -= 1
        return sizes

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.n_batches):
            if self.temper > 0:
                chosen, sizes = range(len(self.by_class)), self.sizes
            else:
                chosen, sizes = self.rng.choice(len(self.by_class), self.c, replace=False), [self.n] * self.c
            yield np.concatenate([self.rng.choice(self.by_class[c], k, replace=len(self.by_class[c]) < k)
                                  for c, k in zip(chosen, sizes)])


class IdentityAwareBatchSampler:
    """Batches of `ids_per_batch` identities with up to `per_id` samples each, so that every anchor
    has same-person, other-expression negatives (paper 001's identity-aware negative set)."""

    def __init__(self, ids: np.ndarray, ids_per_batch: int, per_id: int, n_batches: int | None = None, seed: int = 0) -> None:
        self.by_id = [np.flatnonzero(ids == i) for i in np.unique(ids)]
        self.k, self.per_id = ids_per_batch, per_id
        self.n_batches = n_batches or len(ids) // (ids_per_batch * per_id)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.n_batches):
            chosen = self.rng.choice(len(self.by_id), min(self.k, len(self.by_id)), replace=False)
            yield np.concatenate([self.rng.choice(self.by_id[i], min(self.per_id, len(self.by_id[i])), replace=False)
                                  for i in chosen])


class RandomBatchSampler:
    """Plain shuffled batches: keeps the natural class frequencies (what accuracy is scored on)."""

    def __init__(self, n: int, batch_size: int, seed: int = 0) -> None:
        self.n, self.bs = n, batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n // self.bs

    def __iter__(self) -> Iterator[np.ndarray]:
        perm = self.rng.permutation(self.n)
        for i in range(len(self)):
            yield perm[i * self.bs:(i + 1) * self.bs]
