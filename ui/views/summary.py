"""Summary: the album in N faces covering its groups (`ferindex summarize`: each group's share
of N, its medoid first, then faces far from those already picked). Fast enough on thousands
of faces to recompute on every rerun."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ferindex.analysis.summary import AlbumSummary
from ui import state, widgets

COVER = ("expression", "person")


def groups(index: state.Index, faces, cover: str) -> np.ndarray:
    if cover == "person":
        return widgets.person_groups(index, faces)
    return faces.labels.astype(str)


def render(index: state.Index) -> None:
    st.header("Album summary")
    faces = state.album_faces(index)
    c1, c2 = st.columns([1, 3])
    n = int(c1.number_input("Faces", 1, 200, 12, key="summary_n"))
    cover = c2.radio("Cover every", COVER, horizontal=True, key="summary_cover")
    g = groups(index, faces, cover)
    s = AlbumSummary(n=n).fit(faces.X, g)
    st.markdown(f"**{len(s.selected_)} of {len(faces)} faces** — "
                + ", ".join(f"{name}: {count}" for name, count in
                            sorted(s.allocation_.items(), key=lambda kv: -kv[1])))
    widgets.gallery(widgets.face_cards(
        index, faces, s.selected_, caption=lambda r: f"{g[r]} · face {faces.ids[r]}"), cols=6,
        actions="summary")
    widgets.downloads(index, widgets.face_rows(index, faces, s.selected_,
                                               extra=lambda r: {"group": str(g[r])}),
                      "summary", "album_summary")
