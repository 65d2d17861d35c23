"""Search: album faces whose expression is nearest to an uploaded photo's face or an album face.

Uploads go through `query_photo` (the `ferindex query` path: the index's detector and model);
an album face is searched with its stored vector. The album face is chosen in a picker of
thumbnails (filtered by label, person or file name) or by "Similar" under any face on any page.
Distances are shown as a similarity in percent (ferindex/analysis/similarity.py) with a "weak
match" mark, and copies of one photo (same content hash) take one place in the results. The
person/expression filters are applied to the ranked list, so a filtered search ranks every face
and keeps the first k that pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from ui import actions, state, widgets

UPLOAD, ALBUM = "Upload a photo", actions.ALBUM_SOURCE
PICKER = 24  # thumbnails per picker page
SPARE = 3  # extra neighbours fetched per shown one, to fill places freed by duplicates


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
        res = query_photo(path, index.path, k=_wanted(index, k, keep),
                          model=state.model(index), detector=state.detector(index))
        crop = widgets.face_crop(load_rgb(path), res.face.box)
    q = res.face
    card = widgets.Card(-1, crop, f"{name}: {q.label} ({q.probs[q.label]:.0%})",
                        note=f"face {q.index + 1} of {q.n_faces} (left to right), the largest")
    return Result(card, _filtered(index, res.hits, keep, k))


def search_face(index: state.Index, face_id: int, k: int, keep: set[int] | None = None) -> Result:
    """Neighbours of an album face, by its stored vector (the face itself and its copies left
    out)."""
    from ferindex.pipeline.query import search

    faces = state.album_faces(index)
    row = int(widgets.rows_of(faces, [face_id])[0])
    vi = state.vectors(index)
    with state.catalog(index) as cat:
        hits = search(cat, vi, faces.X[row], _wanted(index, k, keep) + 1,
                      state.model(index).classes)
    keys = state.duplicate_keys(index)
    same = keys.get(face_id)
    hits = [h for h in hits if h["face_id"] != face_id and keys.get(h["face_id"]) != same]
    card = widgets.face_cards(index, faces, [row])[0]
    return Result(card, _filtered(index, hits, keep, k))


def _wanted(index: state.Index, k: int, keep: set[int] | None) -> int:
    return index.faces if keep is not None else min(index.faces, k * SPARE + 5)


def _filtered(index: state.Index, hits: list[dict], keep: set[int] | None, k: int) -> list[dict]:
    hits = collapse_duplicates(hits, state.duplicate_keys(index))
    return [h for h in hits if keep is None or h["face_id"] in keep][:k]


def collapse_duplicates(hits: list[dict], keys: dict[int, tuple]) -> list[dict]:
    """One hit per face of byte-identical photos (the nearest), with `copies`: the paths of the
    others."""
    first: dict[tuple, dict] = {}
    out = []
    for h in hits:
        key = keys.get(h["face_id"], ("face", h["face_id"]))
        if key in first:
            first[key]["copies"].append(h["path"])
            continue
        first[key] = h = {**h, "copies": []}
        out.append(h)
    return out


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
    """Gallery cards: the face, its label (the user's where given), how similar, its photo."""
    scale = state.similarity(index)
    rows = widgets.rows_of(faces, [h["face_id"] for h in hits])
    images = state.thumbs(index, [h["face_id"] for h in hits])
    cards = []
    for h, r, img in zip(hits, rows, images):
        sim = float(scale(h["distance"]))
        caption = f"{faces.labels[r]} · {sim:.0%} similar" + (" · weak match" if sim < 0.5 else "")
        copies = f" · +{len(h['copies'])} identical photo(s)" if h.get("copies") else ""
        cards.append(widgets.Card(
            h["face_id"], img, caption,
            photo=state.photo_preview(Path(h["path"]), h["box"]) if photos else None,
            note=f"{Path(h['path']).name}{copies} · face {h['face_id']}"))
    return cards


def picker_matches(faces, names: dict[int, str], text: str) -> np.ndarray:
    """Rows whose label, person name or file name contains `text` (case-insensitive)."""
    words = text.lower().split()
    if not words:
        return np.arange(len(faces))
    person = [names.get(int(p), "").lower() for p in faces.person_ids]
    hay = [f"{faces.labels[i]} {person[i]} {faces.paths[i]}".lower() for i in range(len(faces))]
    return np.array([i for i, h in enumerate(hay) if all(w in h for w in words)], dtype=np.int64)


def face_picker(index: state.Index, faces, names: dict[int, str], chosen: int | None) -> None:
    """Thumbnails of album faces, filtered by label, person or file name; "Use" searches."""
    with st.expander("Choose the face to search from" if chosen is None else
                     "Choose another face", expanded=chosen is None):
        c1, c2 = st.columns([4, 1])
        text = c1.text_input("Filter by label, person or file name", key="search_filter",
                             placeholder="e.g. happiness, Alice, IMG_2041")
        rows = picker_matches(faces, names, text)
        pages = max(1, -(-len(rows) // PICKER))
        page = int(c2.number_input(f"Page (of {pages})", 1, pages, 1, key="search_pick_page"))
        shown = rows[(page - 1) * PICKER:page * PICKER]
        st.caption(f"{len(rows)} of {len(faces)} faces match")
        cards = widgets.face_cards(index, faces, shown)
        for start in range(0, len(cards), 12):
            for col, card in zip(st.columns(12), cards[start:start + 12]):
                with col:
                    st.image(card.image, caption=card.caption, width="stretch")
                    st.button("Use", key=f"pick_{card.face_id}", on_click=actions.search_from,
                              args=(card.face_id,), type="tertiary")


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
                         help="Show each face in its photo")
    keep = allowed(faces, people, expressions)
    if source == UPLOAD:
        up = st.file_uploader("A photo with a face (the largest face is searched for)",
                              key="search_upload")
        if up is None:
            st.info("Upload a photo to find the album faces with the nearest expression.")
            return
        try:
            with st.spinner(f"Finding the face in {up.name} and searching {len(faces)} faces..."):
                result = search_upload(index, up.name, up.getvalue(), k, keep)
        except widgets.UploadProblem as e:
            widgets.show_problem(e)
            return
    else:
        chosen = st.session_state.get(actions.SEARCH_FACE)
        if chosen is not None and chosen not in set(faces.ids.tolist()):
            chosen = None  # removed since it was chosen
        face_picker(index, faces, names, chosen)
        if chosen is None:
            st.info("Pick a face above (or press \"Similar\" under a face on any page).")
            return
        with st.spinner(f"Searching {len(faces)} faces..."):
            result = search_face(index, int(chosen), k, keep)
    left, right = st.columns([1, 5])
    with left:
        st.markdown("**Query**")
        widgets.gallery([result.query], cols=1, actions=None if result.query.face_id < 0
                        else "query")
    with right:
        st.markdown(f"**{len(result.hits)} nearest faces**"
                    + (" matching the filters" if keep is not None else ""))
        if not result.hits:
            st.info("No album face matches these filters.")
        widgets.gallery(hit_cards(index, faces, result.hits, photos), cols=6, actions="hit")
        scale = state.similarity(index)
        widgets.downloads(index, widgets.face_rows(
            index, faces, widgets.rows_of(faces, [h["face_id"] for h in result.hits]),
            extra=_hit_extra(result.hits, faces, scale)), "search", "search_results")


def _hit_extra(hits: list[dict], faces, scale):
    by_row = {int(r): h for r, h in zip(widgets.rows_of(faces, [h["face_id"] for h in hits]), hits)}

    def extra(r: int) -> dict:
        h = by_row[r]
        return {"rank": h["rank"], "distance": h["distance"],
                "similarity": round(float(scale(h["distance"])), 4), "copies": h["copies"]}
    return extra
