"""Retrieval, clustering and classification metrics for expression embeddings.

Definitions follow the papers ferindex reports against:
- Recall@K and Acc@K as in SGM (paper 003, section 4.1): each test query retrieves its K nearest
  neighbours *from the test set* (itself excluded). Recall@K scores 1 when any of them has the
  query's class; Acc@K is "the fraction of results that are the same class as the queried image,
  averaged over all queries" (i.e. precision at K).
- MAP@R as in Musgrave et al., "A Metric Learning Reality Check" (2020).
- NMI and pairwise F1 of k-means clusters (K = number of classes), as in the metric-learning
  literature SGM cites (Song et al. 2016): F1 over pairs of samples, a pair being positive when
  both are in the same cluster.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ferindex.analysis.knn import KNNClassifier, search, self_neighbours

DEFAULT_KS = (1, 2, 4, 8, 16, 32)
_MAPR_CHUNK = 1024  # queries per chunk: MAP@R retrieves up to (class size) neighbours per query


def _labels(labels: Sequence, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {labels.shape}")
    return labels


def _neighbour_hits(emb: np.ndarray, labels: Sequence, kmax: int, metric: str,
                    groups: Sequence | None = None) -> np.ndarray:
    """(n, kmax) bool: does the j-th nearest other item share the query's label?

    With `groups` (e.g. subject ids), items of the query's own group are skipped, so a face
    cannot score by finding another photo of the same person (identity leaking into the metric).
    """
    labels = _labels(labels, len(emb))
    if groups is None:
        _, idx = self_neighbours(emb, kmax, metric)
        return labels[idx] == labels[:, None]
    groups = _labels(groups, len(emb))
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if kmax > len(emb) - counts.max():
        raise ValueError(f"k={kmax} exceeds the items outside the largest group")
    _, idx = search(emb, emb, min(len(emb), kmax + int(counts.max())), metric)
    other = inverse[idx] != inverse[:, None]
    # the first kmax other-group neighbours of each row, in rank order
    order = np.argsort(~other, axis=1, kind="stable")[:, :kmax]
    idx = np.take_along_axis(idx, order, axis=1)
    return labels[idx] == labels[:, None]


def same_group_share(emb: np.ndarray, groups: Sequence, k: int = 10,
                     metric: str = "euclidean") -> float:
    """Mean share of each item's k nearest others that belong to its own group (e.g. the same
    subject): high for identity descriptors, and ideally low for an expression embedding."""
    return float(_neighbour_hits(emb, groups, k, metric).mean())


def recall_at_k(emb: np.ndarray, labels: Sequence, ks: Sequence[int] = DEFAULT_KS,
                metric: str = "euclidean", groups: Sequence | None = None) -> dict[int, float]:
    """{K: fraction of queries with at least one same-class item among their K nearest others}
    (others outside the query's group when `groups` is given)."""
    hits = _neighbour_hits(emb, labels, max(ks), metric, groups)
    return {k: float(hits[:, :k].any(axis=1).mean()) for k in ks}


def acc_at_k(emb: np.ndarray, labels: Sequence, ks: Sequence[int] = DEFAULT_KS,
             metric: str = "euclidean", groups: Sequence | None = None) -> dict[int, float]:
    """{K: mean over queries of the share of their K nearest others that have the query's class}.

    SGM's Acc@K (paper 003, 4.1): unlike Recall@K it drops when a few neighbours are right but
    most are wrong, which is where their TripletLoss baseline loses to SGM (Fig. 3).
    """
    hits = _neighbour_hits(emb, labels, max(ks), metric, groups)
    return {k: float(hits[:, :k].mean()) for k in ks}


def map_at_r(emb: np.ndarray, labels: Sequence, metric: str = "euclidean") -> float:
    """MAP@R (Musgrave et al. 2020): for a query with R other same-class items, retrieve R
    neighbours and average precision@i over the ranks i where a hit occurs, divided by R.
    Queries alone in their class (R = 0) are skipped.
    """
    emb = np.asarray(emb, dtype=np.float32)
    labels = _labels(labels, len(emb))
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    r_all = counts[inverse] - 1
    valid = np.flatnonzero(r_all > 0)
    if len(valid) == 0:
        raise ValueError("MAP@R needs at least one class with two or more items")
    scores = []
    for s in range(0, len(valid), _MAPR_CHUNK):
        rows = valid[s:s + _MAPR_CHUNK]
        r = r_all[rows]
        kmax = int(r.max())
        _, idx = search(emb, emb[rows], kmax + 1, metric)
        keep = idx != rows[:, None]
        keep[keep.all(axis=1), -1] = False  # self not returned (duplicates): drop the farthest
        idx = idx[keep].reshape(len(rows), kmax)
        hits = labels[idx] == labels[rows][:, None]
        ranks = np.arange(1, kmax + 1)
        within_r = ranks[None, :] <= r[:, None]
        hits &= within_r
        prec = np.cumsum(hits, axis=1) / ranks[None, :]
        scores.append((prec * hits).sum(axis=1) / r)
    return float(np.concatenate(scores).mean())


def _pairs(counts: np.ndarray) -> float:
    """Number of unordered pairs inside each group, summed (n choose 2)."""
    return float((counts * (counts - 1) / 2).sum())


def pairwise_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """F1 over sample pairs: precision = same-cluster pairs that share a class / same-cluster
    pairs; recall = same-class pairs that share a cluster / same-class pairs."""
    from sklearn.metrics.cluster import contingency_matrix

    c = contingency_matrix(np.asarray(y_true), np.asarray(y_pred), sparse=False).astype(np.float64)
    tp, pred_pos, true_pos = _pairs(c), _pairs(c.sum(axis=0)), _pairs(c.sum(axis=1))
    if tp == 0:
        return 0.0
    precision, recall = tp / pred_pos, tp / true_pos
    return float(2 * precision * recall / (precision + recall))


def kmeans_nmi_f1(emb: np.ndarray, labels: Sequence, n_clusters: int | None = None,
                  seed: int = 0) -> tuple[float, float]:
    """(NMI, pairwise F1) of k-means on the embeddings, K = number of classes by default.

    NMI uses the arithmetic-mean normalisation, 2 I / (H(clusters) + H(classes)), the form the
    metric-learning papers use (SGM's printed formula is garbled by PDF extraction).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    emb = np.asarray(emb, dtype=np.float32)
    labels = _labels(labels, len(emb))
    k = n_clusters if n_clusters is not None else len(np.unique(labels))
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(emb)
    nmi = normalized_mutual_info_score(labels, pred, average_method="arithmetic")
    return float(nmi), pairwise_f1(labels, pred)


def knn_accuracy(ref_emb: np.ndarray, ref_labels: Sequence, q_emb: np.ndarray,
                 q_labels: Sequence, k: int = 11, weighted: bool = True,
                 metric: str = "euclidean") -> float:
    """Accuracy of the K-nearest-neighbour classifier (SGM's K=11) with `ref` as the bank."""
    q_labels = _labels(q_labels, len(q_emb))
    clf = KNNClassifier(k=k, weights="distance" if weighted else "uniform", metric=metric)
    pred = clf.fit(ref_emb, ref_labels).predict(q_emb)
    return float((pred == q_labels).mean())


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> np.ndarray:
    """(n, n) int64 counts; rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n):
        raise ValueError(f"labels must lie in [0, {n})")
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def save_confusion_png(cm: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Write the confusion matrix as a PNG: colour = row-normalised rate, text = count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix {cm.shape} does not match {n} class names")
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.8 * n))
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
