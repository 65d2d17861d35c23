"""An index's faces as arrays for the analysis components (the storage-facing glue).

The components in this package take plain arrays; this module reads them out of a catalog
once (ids, vectors, labels, paths, boxes) and keeps the user's own labels. User labels live in
the catalog's meta table (key "user_labels", JSON {face id: label}) rather than in faces.label,
which the build overwrites whenever it re-embeds with a new model: what a person typed must
survive a model upgrade.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store.catalog import Catalog

EXPRESSION, IDENTITY = "expression", "identity"
USER_LABELS_KEY = "user_labels"


@dataclass
class AlbumFaces:
    """Faces that have a vector of one kind, in face-id order."""

    ids: np.ndarray  # (n,) int64
    X: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n,) str: the user's label where given, else the model's
    paths: list[str]  # photo paths relative to the album
    boxes: np.ndarray  # (n, 4) int
    probs: list[np.ndarray | None]
    person_ids: np.ndarray  # (n,) int64, -1 = none

    def __len__(self) -> int:
        return len(self.ids)


def model_id(cat: Catalog) -> str:
    mid = cat.get_meta("model_id")
    if not mid:
        raise CatalogError(f"index {cat.path.parent} has no finished build yet: run `ferindex build`")
    return mid


def load_faces(cat: Catalog, kind: str = EXPRESSION, model: str | None = None) -> AlbumFaces:
    """Every face with a `kind` vector (expression: the index's model; identity: dlib)."""
    if model is None:
        model = model_id(cat) if kind == EXPRESSION else _identity_model(cat)
    ids, X = cat.load_vectors(kind, model)
    if len(ids) == 0:
        what = "identity descriptors (build with --identity)" if kind == IDENTITY else "faces"
        raise CatalogError(f"index {cat.path.parent} holds no {what} yet")
    details = cat.face_details(ids.tolist())
    people = dict(cat._select_in("SELECT id, person_id FROM faces WHERE id IN ({})", ids.tolist()))
    user = user_labels(cat)
    rows = [details[int(i)] for i in ids]
    return AlbumFaces(
        ids=ids, X=X,
        labels=np.array([user.get(int(i), r["label"] or "unknown") for i, r in zip(ids, rows)]),
        paths=[r["path"] for r in rows],
        boxes=np.array([r["box"] for r in rows], dtype=np.int64).reshape(len(rows), 4),
        probs=[r["probs"] for r in rows],
        person_ids=np.array([people.get(int(i)) if people.get(int(i)) is not None else -1
                             for i in ids], dtype=np.int64),
    )


def _identity_model(cat: Catalog) -> str:
    row = cat.con.execute("SELECT model_id FROM vectors WHERE kind = ? LIMIT 1", (IDENTITY,)).fetchone()
    if row is None:
        raise CatalogError(f"index {cat.path.parent} has no identity descriptors: rebuild with"
                           " `ferindex build --identity`")
    return row[0]


def user_labels(cat: Catalog) -> dict[int, str]:
    return {int(k): v for k, v in json.loads(cat.get_meta(USER_LABELS_KEY, "{}") or "{}").items()}


def set_user_label(cat: Catalog, face_id: int, label: str | None) -> None:
    """Record (or with None, forget) the user's label of one face."""
    if not cat.face_details([face_id]):
        raise CatalogError(f"no face with id {face_id} in index {cat.path.parent}")
    labels = user_labels(cat)
    if label is None:
        labels.pop(int(face_id), None)
    else:
        labels[int(face_id)] = label
    with cat.transaction():
        cat.set_meta(USER_LABELS_KEY, json.dumps({str(k): v for k, v in sorted(labels.items())}))


def face_images(cat: Catalog, face_ids: Sequence[int]) -> list[np.ndarray]:
    """Colour thumbnails (RGB) where the build stored them, else the aligned gray chips."""
    from PIL import Image

    thumbs = dict(cat._select_in("SELECT id, thumb FROM faces WHERE id IN ({})", face_ids))
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
