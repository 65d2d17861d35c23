"""People: cluster faces by identity descriptor, then name and merge clusters in the catalog.

dlib's 128-d ResNet descriptors put two photos of the same person closer than about 0.6
(Euclidean) and different people farther apart. HDBSCAN (as in Immich and PhotoPrism's DBSCAN-
style rules) needs no cluster count and leaves faces it cannot place as noise (-1) instead of
forcing strangers into someone's cluster. Repairs follow, all in dlib's own distance units: a
clustered face with no other face of its cluster within 0.6 (dlib's same-person threshold) is
a stranger HDBSCAN took in, and becomes noise; clusters whose centres lie within
`merge_distance` are one person split by HDBSCAN's density estimate and are merged; a noise face within `attach_distance` of a clustered face is that
person on a photo too few to form a dense region (small albums), and joins its cluster.

Cannot-link: two faces of one photo are two people (a mirror or a photo of a photo aside), so
with `groups` (the photo of each face) no cluster keeps two faces of one photo: after HDBSCAN,
such a cluster keeps the face nearest its centre and the others become noise; merges that would
join two faces of one photo are not made; a noise face only joins the nearest cluster that has
no face of its photo.

The algorithm (`PeopleClustering`) is pure; the functions below it read and write the catalog's
`people` table and `faces.person_id`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.store.catalog import Catalog

SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold for its face descriptor


class PeopleClustering(BaseEstimator):
    """HDBSCAN over identity descriptors with cannot-link constraints. Fit sets `labels_`
    (cluster per face, -1 = noise, numbered by decreasing size) and `centers_` (mean
    descriptor per cluster)."""

    def __init__(self, min_cluster_size: int = 3, min_samples: int | None = None,
                 merge_distance: float = 0.5, attach_distance: float = 0.5,
                 stranger_distance: float = SAME_PERSON_DISTANCE) -> None:
        self.min_cluster_size = min_cluster_size
        self.stranger_distance = stranger_distance
        self.min_samples = min_samples
        self.merge_distance = merge_distance
        self.attach_distance = attach_distance

    def fit(self, X: np.ndarray, y: None = None, groups: Sequence | None = None
            ) -> "PeopleClustering":
        """`groups`: the photo of each face (any hashable ids); faces of one group never share
        a cluster. None: no constraint."""
        from sklearn.cluster import HDBSCAN

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"expected (n, d) descriptors, got shape {X.shape}")
        g = (np.arange(len(X)) if groups is None
             else np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1))
        if len(g) != len(X):
            raise ValueError(f"{len(g)} groups for {len(X)} descriptors")
        if len(X) < max(2, self.min_cluster_size):
            labels = np.full(len(X), -1, dtype=np.int64)
        else:
            labels = HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                             copy=True).fit_predict(X)
        labels = _eject_strangers(X, _split_shared_photos(X, labels, g), self.stranger_distance)
        labels = _attach_noise(X, _merge_close(X, labels, self.merge_distance, g), g,
                               self.attach_distance)
        self.labels_ = _renumber_by_size(labels)
        n = self.labels_.max() + 1
        self.centers_ = np.array([X[self.labels_ == c].mean(axis=0) for c in range(n)]).reshape(
            n, X.shape[1])
        return self


def _eject_strangers(X: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """A face with no other face of its cluster closer than `distance` (dlib: different people
    are farther than 0.6) is noise: HDBSCAN with small clusters takes in a lone face of someone
    else (measured on photos/face_recognition: a one-photo person put with Obama at 0.76)."""
    labels = labels.copy()
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        d = np.linalg.norm(X[members][:, None] - X[members][None], axis=2)
        np.fill_diagonal(d, np.inf)
        alone = d.min(axis=1) >= distance
        labels[members[alone]] = -1
        if (~alone).sum() == 1:
            labels[members] = -1  # one face left is no cluster
    return labels


def _split_shared_photos(X: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """In each cluster, of several faces of one photo only the one nearest the cluster's centre
    stays; the others become noise."""
    labels = labels.copy()
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        dist = np.linalg.norm(X[members] - X[members].mean(axis=0), axis=1)
        seen: set[int] = set()
        for i in members[np.argsort(dist, kind="stable")]:
            if groups[i] in seen:
                labels[i] = -1
            seen.add(int(groups[i]))
    return labels


def _merge_close(X: np.ndarray, labels: np.ndarray, distance: float, groups: np.ndarray
                 ) -> np.ndarray:
    """Join clusters whose centres lie closer than `distance` (single linkage on centres),
    closest pair first, unless the two hold faces of one photo."""
    labels = labels.copy()
    blocked: set[tuple[int, int]] = set()
    while True:
        ids = np.unique(labels[labels >= 0])
        if len(ids) < 2:
            return labels
        centers = np.array([X[labels == c].mean(axis=0) for c in ids])
        d = np.linalg.norm(centers[:, None] - centers[None], axis=2)
        np.fill_diagonal(d, np.inf)
        for a, b in blocked:
            ia, ib = np.searchsorted(ids, a), np.searchsorted(ids, b)
            d[ia, ib] = d[ib, ia] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] >= distance:
            return labels
        if set(groups[labels == ids[i]].tolist()) & set(groups[labels == ids[j]].tolist()):
            blocked.add((int(ids[i]), int(ids[j])))
            continue
        labels[labels == ids[j]] = ids[i]
        blocked = {p for p in blocked if int(ids[j]) not in p}  # ids[j] no longer exists


def _attach_noise(X: np.ndarray, labels: np.ndarray, groups: np.ndarray, distance: float
                  ) -> np.ndarray:
    """Give each noise face, nearest first, the cluster of its nearest clustered face when
    closer than `distance` and that cluster has no face of its photo."""
    labels = labels.copy()
    noise, clustered = np.flatnonzero(labels < 0), np.flatnonzero(labels >= 0)
    if len(noise) == 0 or len(clustered) == 0:
        return labels
    d = np.linalg.norm(X[noise][:, None] - X[clustered][None], axis=2)
    photos = {int(c): set(groups[labels == c].tolist()) for c in np.unique(labels[clustered])}
    for n in np.argsort(d.min(axis=1), kind="stable"):
        for k in np.argsort(d[n], kind="stable"):
            if d[n, k] >= distance:
                break
            c = int(labels[clustered[k]])
            if groups[noise[n]] not in photos[c]:
                labels[noise[n]] = c
                photos[c].add(int(groups[noise[n]]))
                break
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


def cluster_people(cat: "Catalog", min_cluster_size: int = 3) -> dict[int, int]:
    """Cluster the album's faces whose quality reaches the floor (faces/quality.py), with the
    photo of each face as cannot-link group, and store the clusters (`store_clusters`)."""
    from ferindex.analysis.album import IDENTITY, load_faces
    from ferindex.faces.quality import QUALITY_FLOOR

    faces = load_faces(cat, IDENTITY, min_quality=QUALITY_FLOOR)
    free = ~np.isin(faces.ids, cat.locked_faces())  # faces the user placed stay where they are
    fit = PeopleClustering(min_cluster_size=min_cluster_size).fit(
        faces.X[free], groups=faces.photo_ids[free])
    return store_clusters(cat, faces.ids[free].tolist(), fit.labels_)


def move_face(cat: "Catalog", face_id: int, person: str | int | None) -> int:
    """Move one face out of its person, into `person` (a name or id) or, with None, into a new
    person of its own; returns the person id it now belongs to. The face stays there when the
    album is clustered again. Refused when the target already holds another face of the same
    photo (faces of one photo are different people)."""
    details = cat.face_details([int(face_id)]).get(int(face_id))
    if details is None or details["not_a_face"]:
        raise UnknownPersonError(f"no face with id {face_id} (run `ferindex find` to list faces)")
    with cat.transaction():
        pid = cat.add_person() if person is None else resolve_person(cat, person)
        same_photo = [f for f in cat.faces_of_person(pid) if f != int(face_id)
                      and cat.face_details([f])[f]["photo_id"] == details["photo_id"]]
        if same_photo:
            raise FerindexError(f"person {pid} already has face {same_photo[0]} of the same photo"
                                f" as face {face_id}: faces of one photo are different people")
        cat.lock_person([int(face_id)], pid)
    return pid


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
