"""Recursive EM sub-class discovery: "what kinds of smiles are in my album?"

SGM paper 003, Algorithm 2 (Deep Gaussian Mixture Sub-space): per expression class, fit a
Gaussian mixture by EM to the class's embeddings, split the class into the mixture's components
and repeat on each part up to L levels. The paper retrains the network on the new sub-labels
between levels; here the embeddings stay fixed (an album has no labels to retrain on), so the
recursion runs EM on the parts of the same embedding space. SGM embeddings are built as
isotropic Gaussians per class, which is why diagonal covariances are the default (full 64-d
covariances cost 2,080 parameters per component: on the 5,000-face benchmark album BIC then
split no class at all, and took 6x longer).

Speed (the fit on that album's 5,000 faces, 2 busy cores: 16.3 s -> 1.6 s): each mixture is
fitted on at most `max_fit` random members of its node and then assigns every member, the BIC
search stops once BIC has risen twice in a row, and the fits run on one thread. The last
matters most: the k-means initialisation and EM steps on a few thousand 64-d points are too
small to share across OpenMP threads, and on a loaded machine the threads wait on each other
(the unchanged algorithm took 16 s with 2 threads and 1.4 s with 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from ferindex.analysis.summary import medoid


@dataclass
class Node:
    """One (sub-)class: id is "<class>" at level 0, "<class>/<i>/<j>..." below."""

    id: str
    level: int
    indices: np.ndarray  # rows of X in this node
    mean: np.ndarray
    medoid: int  # row of X nearest the node mean
    children: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.indices)

    def to_dict(self) -> dict:
        """JSON-friendly view (without the member list)."""
        return {"id": self.id, "level": self.level, "size": self.size, "medoid": self.medoid,
                "children": list(self.children)}


class SubclassDiscovery(BaseEstimator):
    """Fit: tree_ ({node id: Node}, parents before children), labels_ (leaf id per sample).

    n_components: "bic" picks the count in 1..max_components with the lowest BIC (1 = leave the
    node whole), an int forces that many parts at every split. Nodes smaller than 2*min_size are
    not split and counts that would leave fewer than min_size per part on average are not tried.
    max_fit caps the members a node's mixtures are fitted on (a random subset; all members are
    then assigned): 1,500 points pin down six 64-d diagonal Gaussians well.
    """

    def __init__(self, max_level: int = 2, n_components: str | int = "bic", max_components: int = 6,
                 min_size: int = 20, covariance_type: str = "diag", random_state: int = 0,
                 max_fit: int = 1500) -> None:
        self.max_level = max_level
        self.n_components = n_components
        self.max_components = max_components
        self.min_size = min_size
        self.covariance_type = covariance_type
        self.random_state = random_state
        self.max_fit = max_fit

    def fit(self, X: np.ndarray, y: Sequence[Hashable]) -> "SubclassDiscovery":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X {X.shape} and y {y.shape} do not describe the same samples")
        if self.n_components != "bic" and not (isinstance(self.n_components, int)
                                               and self.n_components >= 2):
            raise ValueError(f"n_components must be 'bic' or an int >= 2, got {self.n_components!r}")
        self.tree_: dict[str, Node] = {}
        self.labels_ = np.empty(len(X), dtype=object)
        rng = np.random.default_rng(self.random_state)  # draws the max_fit subsets
        for cls in np.unique(y):
            self._grow(X, str(cls), np.flatnonzero(y == cls), 0, rng)
        return self

    def leaves(self) -> list[Node]:
        return [n for n in self.tree_.values() if not n.children]

    def _grow(self, X: np.ndarray, node_id: str, idx: np.ndarray, level: int,
              rng: np.random.Generator) -> None:
        Z = X[idx]
        node = Node(node_id, level, idx, Z.mean(axis=0), int(idx[medoid(Z)]))
        self.tree_[node_id] = node
        parts = self._split(Z, rng) if level < self.max_level else None
        if parts is None:
            self.labels_[idx] = node_id
            return
        for i, part in enumerate(parts):
            child = f"{node_id}/{i}"
            node.children.append(child)
            self._grow(X, child, idx[part], level + 1, rng)

    def _split(self, Z: np.ndarray, rng: np.random.Generator) -> list[np.ndarray] | None:
        """Member positions of each mixture component (largest first), or None to stay whole."""
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        n = len(Z)
        if self.n_components == "bic":
            candidates = range(1, min(self.max_components, n // self.min_size) + 1)
        else:
            candidates = [self.n_components] if n >= self.n_components * self.min_size else []
        if max(candidates, default=1) < 2:
            return None
        fit_on = Z if n <= self.max_fit else Z[rng.choice(n, self.max_fit, replace=False)]
        best, best_bic, rises = None, np.inf, 0
        for k in candidates:
            gm = GaussianMixture(k, covariance_type=self.covariance_type, n_init=2,
                                 random_state=self.random_state, reg_covar=1e-4)
            with threadpool_limits(1):  # after sklearn's import: it limits loaded libraries only
                gm.fit(fit_on)
            bic = gm.bic(fit_on) if len(candidates) > 1 else 0.0
            if bic < best_bic:
                best, best_bic, rises = gm, bic, 0
            else:
                rises += 1
                if rises == 2:  # past the minimum: more components only fit noise
                    break
        if best is None or best.n_components == 1:
            return None
        assign = best.predict(Z)
        parts = [np.flatnonzero(assign == c) for c in range(best.n_components)]
        parts = sorted((p for p in parts if len(p)), key=len, reverse=True)
        return parts if len(parts) > 1 else None


def recovery_nmi(X: np.ndarray, y: Sequence[Hashable], merge: Sequence[Hashable],
                 n_components: str | int = 2, seed: int = 0) -> tuple[float, np.ndarray]:
    """Does discovery find known structure? Relabel the classes in `merge` as one, split that
    label one level, and score the parts against the true classes: (NMI, rows of X used)."""
    from sklearn.metrics import normalized_mutual_info_score

    y = np.asarray(y)
    rows = np.flatnonzero(np.isin(y, np.asarray(merge)))
    if len(np.unique(y[rows])) < 2:
        raise ValueError(f"need samples of at least two of the merged classes {list(merge)}")
    sd = SubclassDiscovery(max_level=1, n_components=n_components, min_size=1, random_state=seed)
    sd.fit(np.asarray(X)[rows], np.zeros(len(rows), dtype=np.int64))
    nmi = normalized_mutual_info_score(y[rows], sd.labels_.astype(str), average_method="arithmetic")
    return float(nmi), rows


MOUTH_OPEN = 0.25  # inner-lip height / mouth width above which a mouth counts as open


def mouth_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening over mouth width per face, from (n, 68, 2) dlib landmarks (NaN where
    the landmarks are missing or degenerate): ~0 closed, > 0.25 open (talking, laughing,
    surprise)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
    height = np.mean([np.linalg.norm(lm[:, a] - lm[:, b], axis=1)
                      for a, b in ((61, 67), (62, 66), (63, 65))], axis=0)
    width = np.linalg.norm(lm[:, 60] - lm[:, 64], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 1e-6, height / width, np.nan)


def describe_nodes(tree: dict[str, Node], probs: np.ndarray, classes: Sequence[str],
                   mouth: np.ndarray) -> dict[str, str]:
    """What sets each node apart, in words: its share of the parent, how often the mouth is open
    (vs the parent), the model's mean softmax mix, and the class whose probability rose most
    over the parent's. `probs` (n, C) is the softmax per face (NaN rows: none stored), `mouth`
    the mouth_aspect_ratio per face (NaN: unknown)."""
    out = {}
    for node in tree.values():
        parent = tree.get(node.id.rsplit("/", 1)[0]) if node.level else None
        p, m = _mix(probs[node.indices]), _open_share(mouth[node.indices])
        words = [f"{node.size} faces" if parent is None
                 else f"{node.size} faces ({node.size / parent.size:.0%} of {parent.id})"]
        if not np.isnan(m):
            mouth_text = f"mouth open {m:.0%}"
            if parent is not None and not np.isnan(pm := _open_share(mouth[parent.indices])):
                mouth_text += f" (parent {pm:.0%})"
            words.append(mouth_text)
        if p is not None:
            top = np.argsort(-p)[:2]
            words.append("softmax " + ", ".join(f"{classes[c]} {p[c]:.2f}" for c in top))
            if parent is not None and (pp := _mix(probs[parent.indices])) is not None:
                c = int(np.argmax(np.abs(p - pp)))
                if abs(p[c] - pp[c]) >= 0.02:  # smaller shifts are noise, not a difference
                        words.append(f"{'more' if p[c] > pp[c] else 'less'} {classes[c]} than its"
                                 f" parent ({p[c]:.2f} vs {pp[c]:.2f})")
        out[node.id] = " · ".join(words)
    return out


def _mix(probs: np.ndarray) -> np.ndarray | None:
    rows = probs[~np.isnan(probs).any(axis=1)] if probs.ndim == 2 else probs[:0]
    return rows.mean(axis=0) if len(rows) else None


def _open_share(mar: np.ndarray) -> float:
    known = mar[~np.isnan(mar)]
    return float((known > MOUTH_OPEN).mean()) if len(known) else float("nan")
