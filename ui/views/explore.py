"""Explore: a t-SNE or UMAP map of the album's expression embeddings; selecting points on the
map (box, lasso or click), or picking face ids, shows those faces beside it; picked faces are
ringed on the map.

Colours come from ferindex/analysis/palette.py, like `ferindex map`'s PNG: an expression has
the same colour everywhere, people are listed in numeric order. Maps are stored in the catalog
under the key `ferindex map` uses, so either computes it once for both. Large albums get a
button instead of an automatic computation: t-SNE on thousands of faces takes minutes on a
small CPU and should not start just because the page was opened.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from ferindex.analysis.palette import colours
from ui import state, widgets

METHODS = {"tsne": "t-SNE", "umap": "UMAP"}
COLOURS = ("label", "sub-class", "person")
AUTO_MAP_FACES = 1500  # compute a missing map without asking up to this many faces
MAX_SHOWN = 48
SELECTED = "selected"


def colour_groups(index: state.Index, faces, by: str) -> np.ndarray:
    """A group name per face: its label, its level-1 sub-class, or its person."""
    if by == "sub-class":
        return state.subclasses(index, levels=1).labels_.astype(str)
    if by == "person":
        return widgets.person_groups(index, faces)
    return faces.labels.astype(str)


def scatter(xy: np.ndarray, faces, groups: np.ndarray, selected: list[int] = ()):
    """One trace per group in palette order, then the selected faces ringed in black."""
    import plotly.graph_objects as go

    palette = colours(groups)
    fig = go.Figure()
    for g, colour in palette.items():
        sel = np.flatnonzero(groups == g)
        fig.add_trace(go.Scattergl(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=f"{g} ({len(sel)})",
            marker=dict(size=7, color=colour), customdata=faces.ids[sel],
            text=[f"face {faces.ids[i]} · {faces.labels[i]}" for i in sel],
            hovertemplate="%{text}<extra></extra>"))
    rows = widgets.rows_of(faces, selected) if len(selected) else np.empty(0, np.int64)
    if len(rows):
        fig.add_trace(go.Scattergl(
            x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=f"{SELECTED} ({len(rows)})",
            marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(width=2.5, color="black")),
            customdata=faces.ids[rows], hoverinfo="skip"))
    fig.update_layout(height=560, margin=dict(l=0, r=0, t=10, b=0), dragmode="lasso",
                      xaxis=dict(visible=False), yaxis=dict(visible=False),
                      legend=dict(itemsizing="constant"))
    return fig


def selected_ids(event) -> list[int]:
    """Face ids of the points selected on the chart (customdata), in selection order."""
    points = (getattr(event, "selection", None) or {}).get("points", []) if event else []
    out = []
    for p in points:
        v = p.get("customdata")
        v = v[0] if isinstance(v, (list, tuple)) else v
        if v is not None and int(v) not in out:
            out.append(int(v))
    return out


def render(index: state.Index) -> None:
    st.header("Explore the album's expression map")
    faces = state.album_faces(index)
    c1, c2 = st.columns(2)
    method = c1.radio("Map", list(METHODS), format_func=METHODS.get, horizontal=True,
                      key="explore_method")
    by = c2.radio("Colour by", COLOURS, horizontal=True, key="explore_colour")
    if not (len(faces) <= AUTO_MAP_FACES or state.has_map(index, method)
            or st.button(f"Compute the {METHODS[method]} map of {len(faces)} faces",
                         key="explore_compute")):
        st.info(f"No {METHODS[method]} map of this album yet: computing one for {len(faces)}"
                " faces takes a few minutes (it is stored in the index and reused, also by"
                " `ferindex map`).")
        return
    note = (" (the first UMAP in a process compiles its kernels: about a minute)"
            if method == "umap" else "")
    with st.spinner(f"Computing the {METHODS[method]} map of {len(faces)} faces{note}..."):
        xy = state.projection(index, method)
    names = {int(f): f"face {f} · {label}" for f, label in zip(faces.ids, faces.labels)}
    # faces picked by id are ringed (points selected on the chart are marked by plotly itself)
    picked = [int(f) for f in st.session_state.get("explore_pick", [])]
    map_col, faces_col = st.columns([3, 2])
    with map_col:
        event = st.plotly_chart(scatter(xy, faces, colour_groups(index, faces, by), picked),
                                key="explore_map", on_select="rerun",
                                selection_mode=("points", "box", "lasso"))
        st.multiselect("...or pick faces by id", list(names), format_func=names.get,
                       key="explore_pick")
    ids = list(dict.fromkeys(selected_ids(event) + picked))
    with faces_col:
        if not ids:
            st.caption("Select points on the map (box or lasso) to see their faces here.")
            return
        st.markdown(f"**{len(ids)} selected face(s)**"
                    + (f", showing the first {MAX_SHOWN}" if len(ids) > MAX_SHOWN else ""))
        rows = widgets.rows_of(faces, ids[:MAX_SHOWN])
        widgets.gallery(widgets.face_cards(index, faces, rows), cols=4, actions="explore")
        widgets.downloads(index, widgets.face_rows(index, faces, widgets.rows_of(faces, ids)),
                          "explore", "explore_selection")
