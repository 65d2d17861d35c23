"""People: cluster faces by identity descriptor, then name and merge clusters in the catalog.

dlib's 128-d ResNet descriptors put two photos of the same person closer than about 0.6
(Euclidean) and different people farther apart. HDBSCAN (as in Immich and PhotoPrism's DBSCAN-
style rules) needs no cluster count and leaves faces it cannot place as noise (-1) instead of
forcing strangers into someone's cluster. Two repairs follow, both in dlib's own distance units:
clusters whose centres lie within `merge_distance` are one person split by HDBSCAN's density
estimate and are merged; a noise face within `attach_distance` of a clustered face is that
person on a photo too few to form a dense region (small albums), and joins its cluster.

The algorithm (`PeopleClustering`) is pure; the functions below it read and write the catalog's
`people` table and `faces.person_id`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.store.catalog import Catalog

SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold for its face descriptor


class PeopleClustering:
    """HDBSCAN over identity descriptors. Fit sets `labels_` (cluster per face, -1 = noise,
    numbered by decreasing size) and `centers_` (mean descriptor per cluster)."""

    def __init__(self, min_cluster_size: int = 3, min_samples: int | None = None,
                 merge_distance: float = 0.5, attach_distance: float = 0.5) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.merge_distance = merge_distance
        self.attach_distance = attach_distance

    def fit(self, X: np.ndarray, y: None = None) -> "PeopleClustering":
        from sklearn.cluster import HDBSCAN

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"expected (n, d) descriptors, got shape {X.shape}")
        if len(X) < max(2, self.min_cluster_size):
            labels = np.full(len(X), -1, dtype=np.int64)
        else:
            labels = HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                             copy=True).fit_predict(X)
        labels = _attach_noise(X, _merge_close(X, labels, self.merge_distance), self.attach_distance)
        self.labels_ = _renumber_by_size(labels)
        n = self.labels_.max() + 1
        self.centers_ = np.array([X[self.labels_ == c].mean(axis=0) for c in range(n)]).reshape(
            n, X.shape[1])
        return self


def _merge_close(X: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """Join clusters whose centres lie closer than `distance` (single linkage on centres)."""
    labels = labels.copy()
    while True:
        ids = np.unique(labels[labels >= 0])
        if len(ids) < 2:
            return labels
        centers = np.array([X[labels == c].mean(axis=0) for c in ids])
        d = np.linalg.norm(centers[:, None] - centers[None], axis=2)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] >= distance:
            return labels
        labels[labels == ids[j]] = ids[i]


def _attach_noise(X: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """Give each noise face the cluster of its nearest clustered face when closer than distance."""
    noise, clustered = np.flatnonzero(labels < 0), np.flatnonzero(labels >= 0)
    if len(noise) == 0 or len(clustered) == 0:
        return labels
    d = np.linalg.norm(X[noise][:, None] - X[clustered][None], axis=2)
    nearest = np.argmin(d, axis=1)
    close = d[np.arange(len(noise)), nearest] < distance
    labels = labels.copy()
    labels[noise[close]] = labels[clustered[nearest[close]]]
    return labels


def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    out = np.full(len(labels), -1, dtype=np.int64)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    for new, old in enumerate(ids[np.argsort(-counts, kind="stable")]):
        out[labels == old] = new
    return out


def pairwise_precision_recall(y_true: Sequence, y_pred: Sequence) -> tuple[float, float]:
    """Over pairs of faces: precision = same-cluster pairs that are the same person, recall =
    same-person pairs put in one cluster. Noise (-1) is a cluster of one per face."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred).copy()
    noise = y_pred < 0
    y_pred[noise] = y_pred.max(initial=0) + 1 + np.arange(noise.sum())
    same_t = y_true[:, None] == y_true[None]
    same_p = y_pred[:, None] == y_pred[None]
    off = ~np.eye(len(y_true), dtype=bool)
    tp = (same_t & same_p & off).sum()
    pred_pos, true_pos = (same_p & off).sum(), (same_t & off).sum()
    return (float(tp / pred_pos) if pred_pos else 1.0, float(tp / true_pos) if true_pos else 1.0)


# -- catalog storage ----------------------------------------------------------------------

class UnknownPersonError(FerindexError, KeyError):
    """No person with that name or id. A KeyError too, for callers that catch lookups."""

    __str__ = Exception.__str__  # KeyError's would quote the message


def store_clusters(cat: "Catalog", face_ids: Sequence[int], labels: np.ndarray) -> dict[int, int]:
    """Replace unnamed people with fresh clusters: -> {cluster: person id}.

    Named people are what the user curated, so their faces keep their person; a new cluster
    that mostly overlaps a named person's faces joins that person instead of making a new one.
    """
    face_ids = [int(f) for f in face_ids]
    labels = np.asarray(labels)
    current = cat.named_person_faces()
    mapping: dict[int, int] = {}
    with cat.transaction():
        cat.delete_unnamed_people()
        for c in np.unique(labels[labels >= 0]).tolist():
            members = [f for f, lab in zip(face_ids, labels) if lab == c]
            named = [current[f] for f in members if f in current]
            if named and len(named) * 2 >= len(members):
                pid = max(set(named), key=named.count)
            else:
                pid = cat.add_person()
            mapping[int(c)] = pid
            cat.set_person(members, pid, only_unassigned=True)
    return mapping


def resolve_person(cat: "Catalog", person: str | int) -> int:
    """A person id; raises UnknownPersonError naming what was asked for.

    An int is a person id (what the UI's pickers hold), so a person named "2" cannot hide
    person 2 there. A string is what the CLI's PERSON arguments get: a name first, then a
    numeric id, so a person the user named "2" is found by that name.
    """
    if isinstance(person, (int, np.integer)) and not isinstance(person, bool):
        pid = int(person)
        if any(p["id"] == pid for p in cat.people()):
            return pid
        raise UnknownPersonError(f"no person with id {pid} (run `ferindex people` to list them)")
    pid = cat.find_person(str(person))
    if pid is None:
        raise UnknownPersonError(
            f"no person named or numbered {person!r} (run `ferindex people` to list them)")
    return pid


def name_person(cat: "Catalog", person: str, name: str) -> int:
    pid = resolve_person(cat, person)
    with cat.transaction():
        cat.rename_person(pid, name)
    return pid


def merge_people(cat: "Catalog", keep: str, other: str) -> int:
    """Move every face of `other` to `keep` and delete `other`; returns the kept id."""
    a, b = resolve_person(cat, keep), resolve_person(cat, other)
    with cat.transaction():
        cat.merge_people(a, b)
    return a


def list_people(cat: "Catalog") -> list[dict]:
    """[{id, name, count, sample_face}] largest first; the sample is the lowest face id."""
    return cat.people()


def faces_of(cat: "Catalog", person_id: int) -> list[int]:
    return cat.faces_of_person(person_id)


def chip_descriptors(chips: Sequence[np.ndarray], size: int = 150) -> np.ndarray:
    """Identity descriptors (n, 128) of pre-cropped face chips (dataset faces such as CK+48 or
    dlib's 150x150 aligned chips): no detector runs, the whole chip, upscaled to `size` px, is
    the face box, and landmarks are predicted inside it (48 px is too small for dlib's models)."""
    from PIL import Image

    from ferindex.faces.detect import Detection
    from ferindex.faces.identity import IdentityEncoder
    from ferindex.faces.landmarks import predict_landmarks

    encoder = IdentityEncoder()
    out = np.empty((len(chips), 128), dtype=np.float32)
    for i, chip in enumerate(chips):
        img = Image.fromarray(np.asarray(chip, dtype=np.uint8)).convert("RGB")
        rgb = np.asarray(img.resize((size, size), Image.BICUBIC) if img.size != (size, size) else img)
        box = (0, 0, size, size)
        det = Detection(box, 1.0, predict_landmarks(rgb, (0, 0, size - 1, size - 1)))
        out[i] = encoder.encode(rgb, [det])[0]
    return out
