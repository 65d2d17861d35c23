"""People: identity clusters (HDBSCAN on the 128-d descriptors, `ferindex people`) with sample
faces; renaming and merging write to the catalog's people table, so the CLI sees them too."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ferindex.analysis import people as ppl
from ferindex.analysis.album import IDENTITY, load_faces
from ui import state, widgets

SAMPLES = 8  # faces shown per person
PAGE = 30  # people drawn at first: every one is a gallery and a form
FLASH = "people_flash"


def find_people(index: state.Index, min_cluster_size: int) -> int:
    """Cluster the identity descriptors and store the clusters (named people keep their faces,
    as with `ferindex people --recluster`); returns the number of people found."""
    with state.catalog(index) as cat:
        faces = load_faces(cat, IDENTITY)
        labels = ppl.PeopleClustering(min_cluster_size=min_cluster_size).fit(faces.X).labels_
        ppl.store_clusters(cat, faces.ids.tolist(), labels)
        return len(ppl.list_people(cat))


def rename(index: state.Index, person_id: int, name: str) -> None:
    with state.catalog(index) as cat:
        ppl.name_person(cat, person_id, name)  # an int: an id, never a name


def merge(index: state.Index, keep: int, other: int) -> None:
    """Move `other`'s faces to `keep` (KeyError if either vanished meanwhile)."""
    with state.catalog(index) as cat:
        ppl.merge_people(cat, keep, other)


def _apply(change, message: str) -> None:
    """Run a catalog change, then show `message` after a rerun that picks up the new state;
    a person another session merged away meanwhile is a message, not a traceback."""
    try:
        change()
    except KeyError as e:
        st.error(str(e.args[0]) if e.args else str(e))
        return
    st.session_state[FLASH] = message
    st.rerun()


def render(index: state.Index) -> None:
    st.header("People")
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))
    with state.catalog(index) as cat:
        rows = ppl.list_people(cat)
    with st.expander("Find people" if not rows else "Cluster again", expanded=not rows):
        size = st.number_input("Fewest faces of one person", 2, 100, 3, key="people_min_size")
        if st.button("Find people" if not rows else "Cluster again (named people keep their"
                     " faces)", key="people_cluster"):
            with st.spinner("Clustering identity descriptors..."):
                found = find_people(index, int(size))
            st.session_state[FLASH] = f"{found} people found."
            st.rerun()
    if not rows:
        st.info("No people yet: cluster the faces by identity to find them.")
        return
    names = {p["id"]: widgets.person_name(p) for p in rows}
    if len(rows) > 1:
        with st.form("people_merge"):
            c1, c2 = st.columns(2)
            keep = c1.selectbox("Keep", list(names), format_func=names.get, key="merge_keep")
            other = c2.selectbox("Merge into it", list(names), index=1, format_func=names.get,
                                 key="merge_other")
            if st.form_submit_button("Merge"):
                if keep == other:
                    st.warning("Pick two different people to merge.")
                else:
                    _apply(lambda: merge(index, keep, other),
                           f"Merged {names[other]} into {names[keep]}.")
    faces = state.album_faces(index)
    shown_people = rows
    if len(rows) > PAGE:
        top = int(st.number_input(f"People shown (of {len(rows)}, largest first)", 1, len(rows),
                                  PAGE, step=PAGE, key="people_shown"))
        shown_people = rows[:top]
    with state.catalog(index) as cat:
        members = {p["id"]: ppl.faces_of(cat, p["id"])[:SAMPLES] for p in shown_people}
    for p in shown_people:
        st.subheader(f"{names[p['id']]} — {p['count']} faces")
        shown = np.asarray(members[p["id"]], dtype=np.int64)
        shown = shown[np.isin(shown, faces.ids)]  # faces awaiting a vector of a new model: later
        widgets.gallery(widgets.face_cards(index, faces, widgets.rows_of(faces, shown)), cols=8)
        with st.form(f"people_rename_{p['id']}"):
            new = st.text_input("Name", value=p["name"] or "", key=f"rename_{p['id']}")
            if st.form_submit_button("Rename") and new.strip():
                _apply(lambda: rename(index, p["id"], new.strip()),
                       f"{names[p['id']]} is now {new.strip()}.")
