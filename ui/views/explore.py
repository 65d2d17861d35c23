"""Explore: a t-SNE or UMAP map of the album's expression embeddings; selecting points on the
map (box, lasso or click), or picking face ids, shows those faces.

Maps are stored in the catalog under the key `ferindex map` uses, so either computes it once
for both. Large albums get a button instead of an automatic computation: t-SNE on thousands of
faces takes minutes on a small CPU and should not start just because the page was opened.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import state, widgets

METHODS = {"tsne": "t-SNE", "umap": "UMAP"}
COLOURS = ("label", "sub-class", "person")
AUTO_MAP_FACES = 1500  # compute a missing map without asking up to this many faces
MAX_SHOWN = 48


def colour_groups(index: state.Index, faces, by: str) -> np.ndarray:
    """A group name per face: its label, its level-1 sub-class, or its person."""
    if by == "sub-class":
        return state.subclasses(index, levels=1).labels_.astype(str)
    if by == "person":
        return widgets.person_groups(index, faces)
    return faces.labels.astype(str)


def scatter(xy: np.ndarray, faces, groups: np.ndarray):
    import plotly.graph_objects as go

    fig = go.Figure()
    for g in np.unique(groups):
        sel = np.flatnonzero(groups == g)
        fig.add_trace(go.Scattergl(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=f"{g} ({len(sel)})",
            marker=dict(size=7), customdata=faces.ids[sel],
            text=[f"face {faces.ids[i]} · {faces.labels[i]}" for i in sel],
            hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(height=560, margin=dict(l=0, r=0, t=10, b=0), dragmode="lasso",
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
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
    with st.spinner(f"Computing the {METHODS[method]} map{note}..."):
        xy = state.projection(index, method)
    event = st.plotly_chart(scatter(xy, faces, colour_groups(index, faces, by)),
                            key="explore_map", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    names = {int(f): f"face {f} · {label}" for f, label in zip(faces.ids, faces.labels)}
    picked = st.multiselect("...or pick faces by id", list(names), format_func=names.get,
                            key="explore_pick")
    ids = list(dict.fromkeys(selected_ids(event) + [int(f) for f in picked]))
    if not ids:
        st.caption("Select points on the map (box or lasso) to see their faces.")
        return
    st.markdown(f"**{len(ids)} selected face(s)**"
                + (f", showing the first {MAX_SHOWN}" if len(ids) > MAX_SHOWN else ""))
    widgets.gallery(widgets.face_cards(index, faces, widgets.rows_of(faces, ids[:MAX_SHOWN])),
                    cols=8)
