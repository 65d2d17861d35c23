"""`ferindex query`: which album faces look most like the expression of this photo's face?

The query photo goes through the same decode -> detect -> align -> embed path as album photos,
with the detector settings and model the index was built with (read from the catalog), so query
and album vectors are comparable. Searching never takes the write lock: a query during a build
reads the last committed state (a stale FAISS file is rebuilt in memory from the catalog).

Labels follow the album's scheme (store/catalog.py): the query face gets the KNN vote over the
reference bank plus the user's labelled faces (`label`, `probs`) and the model's softmax
(`model_label`, `model_probs`); each hit shows its stored label (user, else KNN, else model).
With a person, only that person's faces are searched (exactly, over their stored vectors).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferindex.analysis.classify import read_expressions
from ferindex.config import INDEX_DIRNAME
from ferindex.errors import CatalogError, FerindexError
from ferindex.store.catalog import Catalog
from ferindex.store.vectors import VectorIndex, open_index

EXPRESSION = "expression"


class NoFaceError(FerindexError):
    """The query photo decoded fine but holds no detectable face."""


def resolve_index(index: str | Path | None = None, album: str | Path | None = None,
                  cwd: str | Path | None = None) -> Path:
    """The index folder: `--index DIR`, else `<album>/.ferindex`, else `./.ferindex`.

    Raises CatalogError with a hint when there is no catalog where we looked.
    """
    if index is not None:
        where = Path(index)
    elif album is not None:
        where = Path(album) / INDEX_DIRNAME
    else:
        where = Path(cwd or Path.cwd()) / INDEX_DIRNAME
        if not where.is_dir():
            raise CatalogError(
                f"no index found at {where}: pass --index DIR (an index folder) or --album PATH "
                "(an album built with `ferindex build PATH`)")
    if not (where / "catalog.sqlite").is_file():
        raise CatalogError(f"no index at {where}: build one first with `ferindex build ALBUM`"
                           + (f" --index {where}" if index is not None else ""))
    return where


@dataclass
class QueryFace:
    """The face of the query photo that was searched for."""

    index: int  # position in left-to-right order
    n_faces: int
    box: list[int]
    label: str  # KNN vote (reference bank + the index's user labels)
    probs: dict[str, float]  # KNN vote shares
    model_label: str = ""  # the model's softmax argmax
    model_probs: dict[str, float] = field(default_factory=dict)


@dataclass
class QueryResult:
    image: str
    face: QueryFace
    hits: list[dict] = field(default_factory=list)  # nearest first, see `search`
    person_id: int | None = None  # the person the search was restricted to


def pick_face(detections: list, face: int | None, image: str | Path) -> tuple[int, object]:
    """(left-to-right index, detection): number `face`, else the largest face; faces within
    10% of the largest area count as equally large and the detector's most confident wins
    (a near-tie in size says nothing, while a weak score often marks a false detection)."""
    order = sorted(detections, key=lambda d: (d.box[0], d.box[1]))
    if face is None:
        areas = np.array([(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in order])
        big = np.flatnonzero(areas >= 0.9 * areas.max())
        i = int(big[np.argmax([order[j].score for j in big])])
    elif 0 <= face < len(order):
        i = face
    else:
        raise FerindexError(f"{image}: --face {face} is out of range: the photo has "
                            f"{len(order)} face(s), numbered 0..{len(order) - 1} left to right")
    return i, order[i]


def query_photo(image: str | Path, index_dir: str | Path, *, k: int = 10, face: int | None = None,
                model=None, detector=None, person: str | None = None) -> QueryResult:
    """Detect, embed and search one photo against an index (see module docstring); `person`
    (a name or id, see `ferindex people`) restricts the hits to that person's faces.

    Raises BadImageError (unreadable photo), NoFaceError, CatalogError (no/incompatible index),
    UnknownPersonError.
    """
    from ferindex.analysis.album import album_knn
    from ferindex.faces.align import align_face_with_landmarks
    from ferindex.io.decode import load_rgb

    index_dir = Path(index_dir)
    with Catalog.open(index_dir) as cat:
        model_id = cat.get_meta("model_id")
        if not model_id:
            raise CatalogError(f"index {index_dir} has no finished build yet: run `ferindex build`")
        person_id = None if person is None else _person_id(cat, person)
        model = model or load_index_model(cat.get_meta("model_ref") or None, model_id, index_dir)
        rgb = load_rgb(image)
        if detector is None:
            from ferindex.faces.detect import make_detector

            detector = make_detector(cat.get_meta("detector", "hog") or "hog",
                                     upsample=int(cat.get_meta("upsample", "1") or 1),
                                     model_pack=cat.get_meta("model_pack") or None)
        dets = detector.detect(rgb)
        if not dets:
            raise NoFaceError(f"{image}: no face found in this photo")
        i, det = pick_face(dets, face, image)
        chip, chip_lm = align_face_with_landmarks(rgb, det.landmarks)
        Z, votes, P = read_expressions(model, album_knn(cat, model), chip[None], chip_lm[None])
        votes = votes[0]
        c = model.classes
        qface = QueryFace(index=i, n_faces=len(dets), box=[int(v) for v in det.box],
                          label=c[int(votes.argmax())],
                          probs={n: round(float(p), 4) for n, p in zip(c, votes)},
                          model_label=c[int(P[0].argmax())],
                          model_probs={n: round(float(p), 4) for n, p in zip(c, P[0])})
        if person_id is None:
            index = open_index(cat, index_dir, kind=EXPRESSION, model_id=model_id,
                               metric=model.metric)
        else:
            index = _person_index(cat, person_id, person, model_id, model.metric)
        return QueryResult(str(image), qface, search(cat, index, Z[0], k, model.classes),
                           person_id)


def _person_id(cat: Catalog, person: str) -> int:
    from ferindex.analysis.people import resolve_person

    return resolve_person(cat, person)


def _person_index(cat: Catalog, person_id: int, person: str, model_id: str, metric: str):
    """An exact in-memory index over one person's faces (a few hundred at most in an album)."""
    ids, X = cat.load_vectors(EXPRESSION, model_id, face_ids=cat.faces_of_person(person_id))
    if not len(ids):
        raise CatalogError(f"person {person!r} has no faces with {model_id} vectors in the index")
    return VectorIndex.from_vectors(ids, X, kind=EXPRESSION, model_id=model_id, metric=metric)


def search(cat: Catalog, index, vector: np.ndarray, k: int, classes: list[str]) -> list[dict]:
    """Nearest album faces, nearest first: rank, path, box, distance, label (user, else KNN,
    else model) with label_prob and label_source, model_label and model_prob (the softmax),
    face_id, photo_id, face_index, det_score, person_id."""
    from ferindex.analysis.album import shown_label

    D, I = index.search(vector[None], k)
    album = Path(cat.get_meta("album", "") or "")
    details = cat.face_details([int(i) for i in I[0] if i >= 0])
    hits = []
    for rank, (dist, fid) in enumerate(zip(D[0], I[0])):
        d = details.get(int(fid))
        if d is None:  # deleted after the index snapshot was taken
            continue
        label, source, conf = shown_label(d, classes)
        probs, model_label = d.pop("probs"), d.pop("label")
        model_prob = None
        if probs is not None and model_label in classes and len(probs) == len(classes):
            model_prob = round(float(probs[classes.index(model_label)]), 4)
        for key in ("knn_label", "knn_probs", "user_label"):
            d.pop(key)
        hits.append({"rank": rank, "path": str(album / d.pop("path")), "box": d.pop("box"),
                     "distance": round(float(dist), 5), "label": label,
                     "label_prob": None if conf is None else round(conf, 4),
                     "label_source": source, "model_label": model_label,
                     "model_prob": model_prob, **d})
    return hits


def load_index_model(ref: str | None, model_id: str, index_dir: Path):
    """The installed model, checked to be the one the index was built with: vectors of two
    models are not comparable, so a mismatch is a CatalogError asking for a rebuild."""
    from ferindex.embed import load_model

    model = load_model(ref)
    if model.model_id != model_id:
        raise CatalogError(
            f"index {index_dir} was built with model {model_id}, but the model now installed is "
            f"{model.model_id}: rerun `ferindex build` on the album to re-embed its faces")
    return model
