"""An index's faces as arrays for the analysis components (the storage-facing glue).

The components in this package take plain arrays; this module reads them out of a catalog
once (ids, vectors, labels, paths, boxes, people) and writes back the labels of faces: the
user's own (`ferindex label`) and the KNN votes (`label_faces`). The catalog keeps three labels
per face (see store/catalog.py); the one shown is the user's, else the KNN vote, else the
model's softmax argmax.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store.catalog import Catalog, Predictions

EXPRESSION, IDENTITY = "expression", "identity"
KNN_K = 11  # SGM (paper 003, Fig. 5)
USER_WEIGHT = 2.0  # votes per user-labelled face against the reference bank
LABEL_BATCH = 4096  # faces per KNN call and committed transaction


@dataclass
class AlbumFaces:
    """Faces that have a vector of one kind, in face-id order."""

    ids: np.ndarray  # (n,) int64
    X: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n,) str: the user's label, else the KNN vote, else the model's
    paths: list[str]  # photo paths relative to the album
    boxes: np.ndarray  # (n, 4) int
    probs: list[np.ndarray | None]  # the model's softmax posterior
    person_ids: np.ndarray  # (n,) int64, -1 = none
    knn_probs: list[np.ndarray | None] = field(default_factory=list)  # KNN vote shares
    label_source: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="<U5"))
    # (n,) "user" | "knn" | "model": where `labels` comes from
    confidence: np.ndarray = field(default_factory=lambda: np.empty(0))
    # (n,) float: 1 for user labels, the vote share of a KNN label, the model's probability
    photo_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # (n,)
    quality: np.ndarray = field(default_factory=lambda: np.empty(0))
    # (n,) float in [0, 1] (faces/quality.py); NaN for faces indexed before it was stored

    def __len__(self) -> int:
        return len(self.ids)


def model_id(cat: Catalog) -> str:
    mid = cat.get_meta("model_id")
    if not mid:
        raise CatalogError(f"index {cat.path.parent} has no finished build yet: run `ferindex build`")
    return mid


def shown_label(d: dict, classes: Sequence[str] | None = None) -> tuple[str, str, float | None]:
    """(label, source, confidence) of one `Catalog.face_details` entry: the user's label (1.0),
    else the KNN vote (its vote share), else the model's argmax (its probability). Without
    `classes` the confidence of KNN/model labels is the largest share."""
    if d.get("user_label"):
        return d["user_label"], "user", 1.0
    for label, probs, source in ((d.get("knn_label"), d.get("knn_probs"), "knn"),
                                 (d.get("label"), d.get("probs"), "model")):
        if label:
            conf = None
            if probs is not None:
                if classes is None:
                    conf = float(np.max(probs))
                elif label in classes and len(probs) == len(classes):
                    conf = float(probs[list(classes).index(label)])
            return label, source, conf
    return "unknown", "model", None


def load_faces(cat: Catalog, kind: str = EXPRESSION, model: str | None = None,
               min_quality: float = 0.0) -> AlbumFaces:
    """Every face with a `kind` vector (expression: the index's model; identity: dlib) whose
    quality reaches `min_quality` (faces without a stored quality always do). Faces marked
    "not a face" have no vectors to load (store/catalog.py)."""
    if model is None:
        model = model_id(cat) if kind == EXPRESSION else _identity_model(cat)
    ids, X = cat.load_vectors(kind, model)
    details = cat.face_details(ids.tolist())
    keep = np.array([details[int(i)]["quality"] is None
                     or details[int(i)]["quality"] >= min_quality for i in ids], dtype=bool)
    ids, X = ids[keep], X[keep]
    if len(ids) == 0:
        what = "identity descriptors (build with --identity)" if kind == IDENTITY else "faces"
        raise CatalogError(f"index {cat.path.parent} holds no {what} yet")
    rows = [details[int(i)] for i in ids]
    shown = [shown_label(r) for r in rows]
    return AlbumFaces(
        ids=ids, X=X,
        labels=np.array([s[0] for s in shown]),
        paths=[r["path"] for r in rows],
        boxes=np.array([r["box"] for r in rows], dtype=np.int64).reshape(len(rows), 4),
        probs=[r["probs"] for r in rows],
        person_ids=np.array([-1 if r["person_id"] is None else r["person_id"] for r in rows],
                            dtype=np.int64),
        knn_probs=[r["knn_probs"] for r in rows],
        label_source=np.array([s[1] for s in shown], dtype="<U5"),
        confidence=np.array([np.nan if s[2] is None else s[2] for s in shown]),
        photo_ids=np.array([r["photo_id"] for r in rows], dtype=np.int64),
        quality=np.array([np.nan if r["quality"] is None else r["quality"] for r in rows]),
    )


def _identity_model(cat: Catalog) -> str:
    models = cat.vector_models(IDENTITY)
    if not models:
        raise CatalogError(f"index {cat.path.parent} has no identity descriptors: rebuild with"
                           " `ferindex build --identity`")
    return models[0]


def user_labels(cat: Catalog) -> dict[int, str]:
    """{face id: label} the user gave (`ferindex label`)."""
    return cat.user_labels()


def set_user_label(cat: Catalog, face_id: int, label: str | None) -> None:
    """Record (or with None, forget) the user's label of one face. The KNN labels of the album
    depend on it: call `label_faces` afterwards (the `label` command does)."""
    with cat.transaction():
        cat.set_user_label(face_id, label)


def user_bank(cat: Catalog, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (m, d), labels (m,)) of the user-labelled faces, with `model`'s vectors."""
    labels = cat.user_labels()
    if not labels:
        return np.empty((0, 0), np.float32), np.empty(0, dtype=str)
    ids, X = cat.load_vectors(EXPRESSION, model, face_ids=list(labels))
    if not len(ids):
        raise CatalogError(f"index {cat.path.parent} has no vectors of model {model}: rebuild it"
                           " with that model to use its user labels")
    return X, np.array([labels[int(i)] for i in ids])


def album_knn(cat: Catalog, model, k: int = KNN_K, user_weight: float = USER_WEIGHT):
    """The KNN classifier of this album: the model's reference bank plus the user's labels."""
    from ferindex.analysis.classify import make_knn

    return make_knn(model, k=k, user=user_bank(cat, model.model_id), user_weight=user_weight)


def labeller_id(model, kind: str | None = None) -> str:
    """What computed an album's labels: the model id plus a digest of its card's calibration,
    so labels made under an earlier calibration of the same weights count as stale. The KNN
    labels (`kind` None) stand on the whole calibration; the softmax label (`kind` "softmax")
    only on its own part, so a release that recalibrates the KNN vote alone leaves it as is."""
    cal = model.card.get("calibration")
    if kind is not None:
        cal = (cal or {}).get(kind)
    digest = hashlib.blake2b(json.dumps(cal, sort_keys=True).encode(), digest_size=4).hexdigest()
    return f"{model.model_id}:{digest}"


def predictions(model, raw: np.ndarray) -> Predictions:
    """The catalog's record of the network's softmax `raw` (n, C) of some faces: prior-corrected
    as `model`'s card says (what readers show) and stamped with that calibration, so the build
    can tell when a new card calls for re-deriving it (`Catalog.faces_with_stale_softmax`)."""
    from ferindex.analysis.calibration import reweight

    probs = reweight(raw, model.class_weight("softmax"))
    return Predictions(raw=np.asarray(raw, np.float32), probs=probs,
                       labels=[model.classes[int(i)] for i in probs.argmax(1)],
                       model_id=model.model_id, labeller=labeller_id(model, "softmax"))


def stored_raw_softmax(cat: Catalog, model, face_ids: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n_classes): the network's softmax of faces as `model` stored it, NaN rows where it
    stored none. Faces stored before the catalog kept the raw softmax (schema v6) get it back by
    undoing the current card's correction of their shown posterior, which is exact only when
    that posterior was made under the same calibration: nothing better is left of them."""
    from ferindex.analysis.calibration import unweight

    mid = model.model_id
    raw = cat.stored_posteriors(face_ids, mid, n_classes, raw=True)
    old = np.flatnonzero(np.isnan(raw).any(axis=1))
    if len(old):
        shown = cat.stored_posteriors([face_ids[i] for i in old], mid, n_classes)
        raw[old] = unweight(shown, model.class_weight("softmax"))
    return raw


def label_faces(cat: Catalog, model, face_ids: Sequence[int] | None = None, knn=None) -> int:
    """Store each face's KNN label and vote shares (the faces of `face_ids`, default: every face
    with a vector of `model`), blended with the network's raw softmax the build stored for the
    face where the card says so; commits in batches and returns the number labelled."""
    mid = model.model_id
    if face_ids is None:
        face_ids = cat.load_vectors(EXPRESSION, mid)[0].tolist()
    if not len(face_ids):
        return 0
    knn = knn or album_knn(cat, model)
    classes = np.asarray(knn.classes_)
    labeller = labeller_id(model)
    done = 0
    for s in range(0, len(face_ids), LABEL_BATCH):
        ids, X = cat.load_vectors(EXPRESSION, mid, face_ids=face_ids[s:s + LABEL_BATCH])
        if not len(ids):
            continue
        softmax = None
        if knn.softmax_weight:
            softmax = stored_raw_softmax(cat, model, ids.tolist(), len(classes))
        votes = knn.predict_proba(X, softmax)
        with cat.transaction():
            cat.set_knn_labels(ids.tolist(), votes, classes[votes.argmax(1)].tolist(), labeller)
        done += len(ids)
    return done


def face_images(cat: Catalog, face_ids: Sequence[int]) -> list[np.ndarray]:
    """Colour thumbnails (RGB) where the build stored them, else the aligned gray chips."""
    from PIL import Image

    thumbs = cat.thumbnails(face_ids)
    chips = cat.chips(list(face_ids))
    out = []
    for fid, chip in zip(face_ids, chips):
        blob = thumbs.get(int(fid))
        out.append(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) if blob else chip)
    return out


def caption(faces: AlbumFaces, i: int) -> str:
    return f"{faces.ids[i]} {faces.labels[i]}"


def album_root(cat: Catalog) -> Path:
    return Path(cat.get_meta("album", "") or "")


def landmarks68(cat: Catalog, face_ids: Sequence[int]) -> np.ndarray:
    """(n, 68, 2) float32 landmarks in photo pixels, in the order given (NaN where missing)."""
    stored = dict(cat.con.execute("SELECT id, landmarks FROM faces").fetchall())
    out = np.full((len(face_ids), 68, 2), np.nan, np.float32)
    for i, f in enumerate(face_ids):
        blob = stored.get(int(f))
        if blob and len(blob) == 68 * 2 * 4:
            out[i] = np.frombuffer(blob, np.float32).reshape(68, 2)
    return out


def probs_matrix(faces: AlbumFaces, n_classes: int) -> np.ndarray:
    """The model's softmax per face as an (n, C) array, NaN rows where none is stored."""
    return np.array([p if p is not None and len(p) == n_classes else np.full(n_classes, np.nan)
                     for p in faces.probs], dtype=np.float64).reshape(len(faces), n_classes)


def duplicate_keys(cat: Catalog) -> dict[int, tuple[str, int]]:
    """{face id: (photo content hash, face number)}: two faces with one key are the same face
    of byte-identical photos (a copy of a file in two folders)."""
    return {int(r[0]): (r[1] or f"photo {r[2]}", int(r[3])) for r in cat.con.execute(
        "SELECT f.id, p.hash, p.id, f.face_idx FROM faces f JOIN photos p ON p.id = f.photo_id")}


def photo_boxes(cat: Catalog, face_id: int) -> list[tuple[int, list[int]]]:
    """(face id, box) of every face on the photo of `face_id`, left to right (faces marked "not
    a face" left out, but `face_id` itself)."""
    return [(int(r[0]), [r[1], r[2], r[3], r[4]]) for r in cat.con.execute(
        "SELECT id, x0, y0, x1, y1 FROM faces WHERE photo_id ="
        " (SELECT photo_id FROM faces WHERE id = ?) AND (not_a_face = 0 OR id = ?)"
        " ORDER BY face_idx", (int(face_id), int(face_id)))]
