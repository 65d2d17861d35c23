"""`ferindex query`: which album faces look most like the expression of this photo's face?

The query photo goes through the same decode -> detect -> align -> embed path as album photos,
with the detector settings and model the index was built with (read from the catalog), so query
and album vectors are comparable. Searching never takes the write lock: a query during a build
reads the last committed state (a stale FAISS file is rebuilt in memory from the catalog).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferindex.config import INDEX_DIRNAME
from ferindex.errors import CatalogError, FerindexError
from ferindex.store.catalog import Catalog
from ferindex.store.vectors import open_index

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
    label: str
    probs: dict[str, float]


@dataclass
class QueryResult:
    image: str
    face: QueryFace
    hits: list[dict] = field(default_factory=list)  # nearest first, see `search`


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
                model=None, detector=None) -> QueryResult:
    """Detect, embed and search one photo against an index (see module docstring).

    Raises BadImageError (unreadable photo), NoFaceError, CatalogError (no/incompatible index).
    """
    from ferindex.faces.align import align_face_with_landmarks
    from ferindex.io.decode import load_rgb

    index_dir = Path(index_dir)
    with Catalog.open(index_dir) as cat:
        model_id = cat.get_meta("model_id")
        if not model_id:
            raise CatalogError(f"index {index_dir} has no finished build yet: run `ferindex build`")
        model = model or _load_model(cat.get_meta("model_ref") or None, model_id, index_dir)
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
        Z, P = model.embed_and_proba(chip[None], chip_lm[None])
        qface = QueryFace(index=i, n_faces=len(dets), box=[int(v) for v in det.box],
                          label=model.classes[int(P[0].argmax())],
                          probs={c: round(float(p), 4) for c, p in zip(model.classes, P[0])})
        index = open_index(cat, index_dir, kind=EXPRESSION, model_id=model_id,
                           metric=model.metric)
        return QueryResult(str(image), qface, search(cat, index, Z[0], k, model.classes))


def search(cat: Catalog, index, vector: np.ndarray, k: int, classes: list[str]) -> list[dict]:
    """Nearest album faces: path, box, distance, label (+ label_prob, ids, face_index, rank)."""
    D, I = index.search(vector[None], k)
    album = Path(cat.get_meta("album", "") or "")
    details = cat.face_details([int(i) for i in I[0] if i >= 0])
    hits = []
    for rank, (dist, fid) in enumerate(zip(D[0], I[0])):
        d = details.get(int(fid))
        if d is None:  # deleted after the index snapshot was taken
            continue
        probs = d.pop("probs")
        label_prob = None
        if probs is not None and d["label"] in classes and len(probs) == len(classes):
            label_prob = round(float(probs[classes.index(d["label"])]), 4)
        hits.append({"rank": rank, "path": str(album / d.pop("path")), "box": d.pop("box"),
                     "distance": round(float(dist), 5), "label": d.pop("label"),
                     "label_prob": label_prob, **d})
    return hits


def _load_model(ref: str | None, model_id: str, index_dir: Path):
    from ferindex.embed import load_model

    model = load_model(ref)
    if model.model_id != model_id:
        raise CatalogError(
            f"index {index_dir} was built with model {model_id}, but the model now installed is "
            f"{model.model_id}: rerun `ferindex build` on the album to re-embed its faces")
    return model
