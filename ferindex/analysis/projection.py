"""2-D maps of an album's embeddings (t-SNE, UMAP) for scatter plots.

Both are slow enough that results are cached in the catalog by the caller, keyed by
`cache_key` (model, faces and settings): the same album and model give the same map without
recomputing. UMAP compiles its numba kernels on first use in a process (about a minute on a
small CPU), so `fit_transform` reports that through `on_status` before it happens.

t-SNE speed (5,000 faces, 2 busy cores: 56 s -> 11 s): sklearn's Barnes-Hut gradient runs
in OpenMP threads that wait on each other every iteration, so on a loaded machine one thread
is faster (22.7 s against 56 s); and 500 iterations (250 of them early exaggeration) instead
of sklearn's 1000 keep the same neighbourhoods (FER+ test faces: trustworthiness@10 0.9923 vs
0.9924, 2-D 10-NN expression accuracy 0.339 vs 0.337; KL 1.34 vs 1.23) in half the time.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

METHODS = ("tsne", "umap")


def cache_key(model_id: str, face_ids: Sequence[int], method: str, **params: object) -> str:
    """Stable key of one map: model id, the exact set and order of faces, method and settings."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([model_id, method, sorted(params.items())], default=str).encode())
    h.update(np.asarray(face_ids, dtype=np.int64).tobytes())
    return f"projection:{method}:{h.hexdigest()}"


class Projection(BaseEstimator):
    """fit_transform(X) -> (n, 2) float32, also kept in `embedding_`."""

    def __init__(self, method: str = "tsne", random_state: int = 0, perplexity: float = 30.0,
                 n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
                 on_status: Callable[[str], None] | None = None, max_iter: int = 500) -> None:
        self.method = method
        self.random_state = random_state
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.on_status = on_status
        self.max_iter = max_iter

    def params(self) -> dict:
        """The settings that change the result (for cache_key)."""
        common = {"random_state": self.random_state, "metric": self.metric}
        if self.method == "tsne":
            return {**common, "perplexity": self.perplexity, "max_iter": self.max_iter}
        return {**common, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist}

    def fit(self, X: np.ndarray, y: None = None) -> "Projection":
        self.fit_transform(X)
        return self

    def fit_transform(self, X: np.ndarray, y: None = None) -> np.ndarray:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"expected (n, d) vectors, got shape {X.shape}")
        n = len(X)
        if n < 3:  # neither method can place fewer points; a line is the honest answer
            self.embedding_ = np.c_[np.arange(n, dtype=np.float32), np.zeros(n, np.float32)]
            return self.embedding_
        if self.method == "tsne":
            from sklearn.manifold import TSNE
            from threadpoolctl import threadpool_limits

            # perplexity must stay below n; sklearn raises otherwise
            perplexity = min(self.perplexity, (n - 1) / 3)
            tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric=self.metric,
                        max_iter=self.max_iter, random_state=self.random_state)
            with threadpool_limits(1):  # after sklearn's import: it limits loaded libraries only
                out = tsne.fit_transform(X)
        else:
            self._status("UMAP: compiling numba kernels on first use (about a minute)...")
            import umap

            out = umap.UMAP(n_components=2, n_neighbors=min(self.n_neighbors, n - 1),
                            min_dist=self.min_dist, metric=self.metric,
                            random_state=self.random_state).fit_transform(X)
        self.embedding_ = np.asarray(out, dtype=np.float32)
        return self.embedding_

    def _status(self, message: str) -> None:
        if self.on_status is not None:
            self.on_status(message)
