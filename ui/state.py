"""The open index and the heavy objects every page shares.

Streamlit reruns the whole script on every click, so anything slow (the model, the detector,
the album's vectors, the FAISS index, KNN banks, sub-class trees, maps) is built once per
process with `st.cache_resource`, keyed by the index folder and its catalog generation: a
build that commits faces bumps the generation, and the next rerun sees the new data. Labels
(`ferindex label`, KNN re-votes: the catalog's labels_version) and people (renamed or merged in
the People page) change without a generation bump, so they are keyed by their own stamps.
SQLite connections must not cross threads and every browser session runs in its own thread,
so the catalog itself is opened per rerun and only plain arrays are cached.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ferindex.config import INDEX_DIRNAME
from ferindex.errors import CatalogError, FerindexError
from ferindex.store.catalog import CATALOG_NAME, Catalog

EXPRESSION = "expression"
USER_WEIGHT = 2.0  # votes per user-labelled face in KNN, as `ferindex classify --index`
CONTEXT_SIZE = (320, 240)  # px, the face-in-its-photo previews under search hits
PHOTO_SIDE = 1000  # px, longest side of a photo opened large


class IndexUnavailable(Exception):
    """Why the app cannot show an index, worded for the person looking at the page."""


@dataclass(frozen=True)
class Index:
    """What the pages need to know about the index they show (a snapshot taken each rerun)."""

    path: Path
    generation: int
    model_id: str
    model_ref: str
    metric: str
    detector: str
    upsample: int
    model_pack: str
    album: Path
    photos: int
    faces: int
    labels_stamp: str  # catalog meta labels_version: moves with every user or KNN label write
    people_stamp: str  # changes when people are clustered, renamed or merged


def locate(text: str) -> Path:
    """An index folder, or an album folder holding `.ferindex`; else CatalogError with a hint."""
    from ferindex.pipeline.query import resolve_index

    p = Path(text.strip()).expanduser()
    if not (p / CATALOG_NAME).is_file() and (p / INDEX_DIRNAME / CATALOG_NAME).is_file():
        p = p / INDEX_DIRNAME
    return resolve_index(index=p)


def open_index(text: str) -> Index:
    """Check the index named by the sidebar field; raises IndexUnavailable with the reason."""
    if not text.strip():
        raise IndexUnavailable("Enter the folder of an index (built with `ferindex build ALBUM`)"
                               " in the sidebar, or start the app with"
                               " `streamlit run ui/app.py -- --index DIR`.")
    path = Path(text)
    try:
        path = locate(text)
        with Catalog.open(path) as cat:
            meta = dict(cat.con.execute("SELECT key, value FROM meta").fetchall())
            counts = cat.counts()
            people = _stamp(
                [tuple(r) for r in cat.con.execute("SELECT id, name FROM people ORDER BY id")],
                [tuple(r) for r in cat.con.execute("SELECT person_id, COUNT(*), TOTAL(id) FROM"
                                                   " faces GROUP BY person_id ORDER BY person_id")])
    except CatalogError as e:
        raise IndexUnavailable(f"No usable index: {e}") from e
    except sqlite3.DatabaseError as e:
        raise IndexUnavailable(f"{path}: not a readable ferindex catalog ({e})") from e
    if not meta.get("model_id"):
        raise IndexUnavailable(f"The index at {path} has no finished build yet: run"
                               f" `ferindex build ALBUM --index {path}`.")
    if counts["faces"] == 0:
        raise IndexUnavailable(
            f"The index at {path} is empty: none of its {counts['photos']} photo(s) has a face"
            f" ({counts['noface']} without a face, {counts['errors']} unreadable). Add photos"
            " with faces to the album and run `ferindex build` again.")
    return Index(
        path=path, generation=int(meta.get("generation", 0)), model_id=meta["model_id"],
        model_ref=meta.get("model_ref", ""), metric=meta.get("metric", "euclidean"),
        detector=meta.get("detector", "hog"), upsample=int(meta.get("upsample", 1)),
        model_pack=meta.get("model_pack", ""), album=Path(meta.get("album", "")),
        photos=counts["photos"], faces=counts["faces"],
        labels_stamp=meta.get("labels_version", "0"), people_stamp=people)


def _stamp(*parts: object) -> str:
    """A short hash of plain values (tuples, not sqlite3.Row: a Row's repr is its address)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


@contextmanager
def catalog(index: Index) -> Iterator[Catalog]:
    """A connection for this rerun (and this thread) only."""
    with Catalog.open(index.path) as cat:
        yield cat


# -- process-wide caches ----------------------------------------------------------------------

class SerialDetector:
    """One detector shared by every browser session: dlib's detectors are not documented as
    thread-safe, so concurrent sessions take turns."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list:
        with self._lock:
            return self.inner.detect(rgb)


@st.cache_resource(show_spinner="Loading the expression model...")
def _model(ref: str, model_id: str, index_path: str):
    from ferindex.pipeline.query import load_index_model  # the query path's model/index check

    return load_index_model(ref or None, model_id, Path(index_path))


def model(index: Index):
    """The model the index was built with (CatalogError if another one is installed now)."""
    return _model(index.model_ref, index.model_id, str(index.path))


@st.cache_resource(show_spinner="Loading the face detector...")
def _detector(name: str, upsample: int, model_pack: str) -> SerialDetector:
    from ferindex.faces.detect import make_detector

    return SerialDetector(make_detector(name, upsample=upsample, model_pack=model_pack or None))


def detector(index: Index) -> SerialDetector:
    """The detector settings the index was built with, so uploads are framed like album faces."""
    return _detector(index.detector, index.upsample, index.model_pack)


@st.cache_resource(show_spinner="Reading the album's faces...", max_entries=4)
def _album_faces(path: str, generation: int, labels_stamp: str, people_stamp: str):
    from ferindex.analysis.album import load_faces

    with Catalog.open(path) as cat:
        return load_faces(cat)


def album_faces(index: Index):
    """AlbumFaces (ids, vectors, labels with the user's labels applied, paths, people)."""
    return _album_faces(str(index.path), index.generation, index.labels_stamp, index.people_stamp)


@st.cache_resource(show_spinner="Opening the vector index...", max_entries=4)
def _vectors(path: str, generation: int, model_id: str, metric: str):
    from ferindex.store.vectors import open_index as open_vectors

    with Catalog.open(path) as cat:
        return open_vectors(cat, path, kind=EXPRESSION, model_id=model_id, metric=metric)


def vectors(index: Index):
    """The FAISS index of the album's expression vectors for this generation."""
    return _vectors(str(index.path), index.generation, index.model_id, index.metric)


@st.cache_resource(show_spinner="Preparing the KNN classifier...", max_entries=4)
def _knn(path: str, generation: int, labels_stamp: str, _index: Index):
    from ferindex.analysis.album import user_labels
    from ferindex.analysis.classify import make_knn

    faces = album_faces(_index)
    with Catalog.open(path) as cat:
        mine = user_labels(cat)
    keep = np.isin(faces.ids, list(mine))
    user = (faces.X[keep], np.array([mine[int(i)] for i in faces.ids[keep]]))
    return make_knn(model(_index), user=user, user_weight=USER_WEIGHT)


def knn(index: Index):
    """KNN over the model's reference bank plus the faces the user labelled in this index."""
    return _knn(str(index.path), index.generation, index.labels_stamp, index)


@st.cache_data(show_spinner=False, max_entries=64)
def _thumbs(path: str, generation: int, face_ids: tuple[int, ...]) -> list[np.ndarray]:
    from ferindex.analysis.album import face_images

    with Catalog.open(path) as cat:
        return face_images(cat, list(face_ids))


def thumbs(index: Index, face_ids) -> list[np.ndarray]:
    """Colour thumbnails (or aligned chips) of faces, in the order given."""
    return _thumbs(str(index.path), index.generation, tuple(int(f) for f in face_ids))


def draw_boxes(rgb: np.ndarray, boxes, highlight: int | None = None, side: int = 0,
               numbers: bool = True) -> np.ndarray:
    """The picture scaled to `side` px on its longest side (0: as is), every box outlined and
    numbered 1, 2... left to right as given; box `highlight` (a position) drawn thicker in
    yellow, the others in white."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(rgb)
    scale = side / max(img.size) if side else 1.0
    if scale != 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 200))
    for j, box in enumerate(boxes):
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        colour = (255, 214, 0) if j == highlight else (255, 255, 255)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width * (2 if j == highlight else 1))
        if numbers:
            label = str(j + 1)
            size = max(12, round((y1 - y0) / 4))
            draw.rectangle([x0, max(0, y0 - size - 4), x0 + size * len(label) * 0.7 + 6, y0],
                           fill=colour)
            draw.text((x0 + 3, max(0, y0 - size - 3)), label, fill=(0, 0, 0),
                      font_size=size)
    return np.asarray(img)


@st.cache_data(show_spinner=False, max_entries=256)
def _context(path: str, mtime_ns: int, box: tuple[int, int, int, int]) -> np.ndarray:
    from PIL import Image

    from ferindex.io.decode import load_rgb

    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * max(x1 - x0, y1 - y0)
    # a 4:3 window around the face, about three faces wide, kept inside the photo
    hw, hh = min(w, half * 4 / 3 * 2) / 2, min(h, half * 2) / 2
    left = int(min(max(cx - hw, 0), w - 2 * hw))
    top = int(min(max(cy - hh, 0), h - 2 * hh))
    crop = rgb[top:top + int(2 * hh), left:left + int(2 * hw)]
    shown = draw_boxes(crop, [(x0 - left, y0 - top, x1 - left, y1 - top)], highlight=0,
                       numbers=False)
    img = Image.fromarray(shown)
    img.thumbnail(CONTEXT_SIZE)
    canvas = Image.new("RGB", CONTEXT_SIZE, (14, 17, 23))  # every preview the same height
    canvas.paste(img, ((CONTEXT_SIZE[0] - img.width) // 2, (CONTEXT_SIZE[1] - img.height) // 2))
    return np.asarray(canvas)


def photo_preview(path: Path, box) -> np.ndarray | None:
    """The face in its surroundings (about three faces wide, the face boxed), always the same
    4:3 size; None if the file is gone or unreadable (the album may have moved)."""
    try:
        return _context(str(path), path.stat().st_mtime_ns, tuple(int(v) for v in box))
    except (OSError, FerindexError):
        return None


@st.cache_data(show_spinner="Opening the photo...", max_entries=16)
def _photo(path: str, mtime_ns: int, boxes: tuple, highlight: int) -> np.ndarray:
    from ferindex.io.decode import load_rgb

    return draw_boxes(load_rgb(path), boxes, highlight, side=PHOTO_SIDE)


def photo_with_boxes(path: Path, boxes, highlight: int) -> np.ndarray | None:
    """An album photo, large, with every face numbered (the one at position `highlight`
    marked); None if the file is gone or unreadable."""
    try:
        return _photo(str(path), path.stat().st_mtime_ns,
                      tuple(tuple(int(v) for v in b) for b in boxes), highlight)
    except (OSError, FerindexError):
        return None


@st.cache_resource(show_spinner="Calibrating the similarity scale on the model's reference"
                   " faces...", max_entries=4)
def _similarity(ref: str, model_id: str, _index: Index):
    from ferindex.analysis.similarity import model_scale

    return model_scale(model(_index))


def similarity(index: Index):
    """The model's SimilarityScale (distance -> % similar), fitted once per model."""
    return _similarity(index.model_ref, index.model_id, index)


@st.cache_data(show_spinner=False, max_entries=4)
def _duplicate_keys(path: str, generation: int) -> dict[int, tuple[str, int]]:
    from ferindex.analysis.album import duplicate_keys

    with Catalog.open(path) as cat:
        return duplicate_keys(cat)


def duplicate_keys(index: Index) -> dict[int, tuple[str, int]]:
    """{face id: (photo content hash, face number)} for collapsing copies of one photo."""
    return _duplicate_keys(str(index.path), index.generation)


@st.cache_resource(show_spinner="Discovering sub-classes (EM per expression)...", max_entries=8)
def _subclasses(path: str, generation: int, labels_stamp: str, levels: int, parts: str | int,
                min_size: int, _index: Index):
    from ferindex.analysis.subclasses import SubclassDiscovery

    faces = album_faces(_index)
    return SubclassDiscovery(max_level=levels, n_components=parts, min_size=min_size).fit(
        faces.X, faces.labels)


def subclasses(index: Index, levels: int = 2, parts: str | int = "bic", min_size: int = 20):
    """A fitted SubclassDiscovery over the album (paper 003, Alg. 2), cached per settings."""
    return _subclasses(str(index.path), index.generation, index.labels_stamp, levels, parts,
                       min_size, index)


def map_key(index: Index, method: str) -> tuple[str, object]:
    """(catalog meta key, Projection): the same key `ferindex map` uses, so the CLI and the UI
    share one cached map per album, model and method."""
    from ferindex.analysis.projection import Projection, cache_key

    proj = Projection(method, metric=index.metric)
    ids = album_faces(index).ids.tolist()
    return cache_key(index.model_id, ids, method, **proj.params()), proj


def has_map(index: Index, method: str) -> bool:
    key, _ = map_key(index, method)
    with catalog(index) as cat:
        return cat.get_meta(key) is not None


@st.cache_resource(show_spinner=False, max_entries=8)
def _map(path: str, generation: int, method: str, _index: Index) -> np.ndarray:
    import json

    key, proj = map_key(_index, method)
    with Catalog.open(path) as cat:
        stored = cat.get_meta(key)
        if stored:
            return np.asarray(json.loads(stored), dtype=np.float32)
        xy = proj.fit_transform(album_faces(_index).X)
        with cat.transaction():
            cat.set_meta(key, json.dumps(np.round(xy, 4).tolist()))
    return xy


def projection(index: Index, method: str) -> np.ndarray:
    """(n, 2) map of the album faces (AlbumFaces order): read from the catalog, or computed and
    stored there."""
    return _map(str(index.path), index.generation, method, index)
