"""Search: album faces whose expression is nearest to an uploaded photo's face or an album face.

Uploads go through `query_photo` (the `ferindex query` path: the index's detector and model);
an album face is searched with its stored vector. The person/expression filters are applied to
the ranked list, so a filtered search ranks every face and keeps the first k that pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from ui import state, widgets

UPLOAD, ALBUM = "Upload a photo", "Pick a face from the album"


@dataclass
class Result:
    query: widgets.Card
    hits: list[dict] = field(default_factory=list)  # query.search() dicts, nearest first


def search_upload(index: state.Index, name: str, data: bytes, k: int,
                  keep: set[int] | None = None) -> Result:
    """Detect, embed and search the largest face of an uploaded photo (UploadProblem if the
    file is not an image or holds no face)."""
    from ferindex.io.decode import load_rgb
    from ferindex.pipeline.query import query_photo

    with widgets.saved_upload(name, data) as path:
        res = query_photo(path, index.path, k=k if keep is None else index.faces,
                          model=state.model(index), detector=state.detector(index))
        crop = widgets.face_crop(load_rgb(path), res.face.box)
    q = res.face
    card = widgets.Card(-1, crop, f"{name}: {q.label} ({q.probs[q.label]:.2f})",
                        note=f"face {q.index + 1} of {q.n_faces} (left to right), the largest")
    return Result(card, _filtered(res.hits, keep, k))


def search_face(index: state.Index, face_id: int, k: int, keep: set[int] | None = None) -> Result:
    """Neighbours of an album face, by its stored vector (the face itself left out)."""
    from ferindex.pipeline.query import search

    faces = state.album_faces(index)
    row = int(widgets.rows_of(faces, [face_id])[0])
    vi = state.vectors(index)
    with state.catalog(index) as cat:
        hits = search(cat, vi, faces.X[row], vi.count if keep is not None else k + 1,
                      state.model(index).classes)
    hits = [h for h in hits if h["face_id"] != face_id]
    card = widgets.face_cards(index, faces, [row])[0]
    return Result(card, _filtered(hits, keep, k))


def _filtered(hits: list[dict], keep: set[int] | None, k: int) -> list[dict]:
    return [h for h in hits if keep is None or h["face_id"] in keep][:k]


def allowed(faces, people: list[int], expressions: list[str]) -> set[int] | None:
    """Face ids passing the filters (None: no filter)."""
    if not people and not expressions:
        return None
    mask = np.ones(len(faces), dtype=bool)
    if people:
        mask &= np.isin(faces.person_ids, people)
    if expressions:
        mask &= np.isin(faces.labels, expressions)
    return set(faces.ids[mask].tolist())


def hit_cards(index: state.Index, faces, hits: list[dict], photos: bool) -> list[widgets.Card]:
    """Gallery cards: the face, its label (the user's where given) and distance, its photo."""
    rows = widgets.rows_of(faces, [h["face_id"] for h in hits])
    images = state.thumbs(index, [h["face_id"] for h in hits])
    return [widgets.Card(
        h["face_id"], img, f"{faces.labels[r]} · d={h['distance']:.3f}",
        photo=state.photo_preview(Path(h["path"]), h["box"]) if photos else None,
        note=f"{Path(h['path']).name} · face {h['face_id']}")
        for h, r, img in zip(hits, rows, images)]


def render(index: state.Index) -> None:
    st.header("Search by expression")
    faces = state.album_faces(index)
    names = widgets.people_names(index)
    source = st.radio("Look for faces like", [UPLOAD, ALBUM], horizontal=True, key="search_source")
    c1, c2, c3, c4 = st.columns([2, 3, 3, 1])
    k = c1.slider("Faces to show", 1, 48, 12, key="search_k")
    people = c2.multiselect("Person", list(names), format_func=names.get, key="search_people")
    expressions = c3.multiselect("Expression", sorted(set(faces.labels.tolist())),
                                 key="search_expressions")
    photos = c4.checkbox("Photos", value=True, key="search_photos",
                         help="Show each face's photo with its box")
    keep = allowed(faces, people, expressions)
    if source == UPLOAD:
        up = st.file_uploader("A photo with a face (the largest face is searched for)",
                              key="search_upload")
        if up is None:
            st.info("Upload a photo to find the album faces with the nearest expression.")
            return
        try:
            result = search_upload(index, up.name, up.getvalue(), k, keep)
        except widgets.UploadProblem as e:
            widgets.show_problem(e)
            return
    else:
        names = {int(f): f"face {f} · {label} · {path}"
                 for f, label, path in zip(faces.ids, faces.labels, faces.paths)}
        face_id = st.selectbox("Album face", list(names), format_func=names.get,
                               key="search_face")
        result = search_face(index, int(face_id), k, keep)
    left, right = st.columns([1, 5])
    with left:
        st.markdown("**Query**")
        widgets.gallery([result.query], cols=1)
    with right:
        st.markdown(f"**{len(result.hits)} nearest faces**"
                    + (" matching the filters" if keep is not None else ""))
        if not result.hits:
            st.info("No album face matches these filters.")
        widgets.gallery(hit_cards(index, faces, result.hits, photos), cols=6)
