"""People: identity clusters (HDBSCAN on the 128-d descriptors, `ferindex people`), ten per page,
each a collapsible group of sample faces. Renaming, merging and splitting write to the catalog's
people table, so the CLI sees them too; a merge or a split asks for confirmation first and can
be undone right after (the moved faces go back to a person of the old name)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from ferindex.analysis import people as ppl
from ferindex.analysis.album import IDENTITY, load_faces
from ui import actions, state, widgets

SAMPLES = 8  # faces shown per person
PAGE = 10  # people per page
FLASH = "people_flash"
PENDING = "people_pending"  # a merge or split waiting for confirmation
UNDO = "people_last_move"  # how to take back the last merge or split


@dataclass(frozen=True)
class Move:
    """Faces that moved from one person to another; undone by moving them back to a person
    named like the old one (a new id when the old person is gone)."""

    faces: tuple[int, ...]
    source: int  # person id they came from
    source_name: str | None
    target: int  # person id they went to
    what: str  # "merge" or "split", for messages


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


def merge(index: state.Index, keep: int, other: int) -> Move:
    """Move `other`'s faces to `keep` (KeyError if either vanished meanwhile)."""
    with state.catalog(index) as cat:
        moved = tuple(cat.faces_of_person(other))
        name = {p["id"]: p["name"] for p in cat.people()}.get(other)
        ppl.merge_people(cat, keep, other)
    return Move(moved, other, name, keep, "merge")


def split(index: state.Index, person_id: int, face_ids: list[int]) -> Move:
    """Move some faces of a person to a new, unnamed person."""
    with state.catalog(index) as cat, cat.transaction():
        new = cat.add_person(None)
        cat.set_person(face_ids, new)
    return Move(tuple(face_ids), person_id, None, new, "split")


def undo(index: state.Index, move: Move) -> int:
    """Put the moved faces back: into the source person if it still exists, else into a new
    person with its old name. Returns that person's id."""
    with state.catalog(index) as cat, cat.transaction():
        alive = cat.con.execute("SELECT 1 FROM people WHERE id = ?", (move.source,)).fetchone()
        back = move.source if alive else cat.add_person(move.source_name)
        cat.set_person(list(move.faces), back)
        if not cat.faces_of_person(move.target):
            cat.con.execute("DELETE FROM people WHERE id = ?", (move.target,))
    return back


def _apply(change, message: str, undoable: bool = False) -> None:
    """Run a catalog change (callback), then show `message` on the rerun that picks up the new
    state; a person another session changed meanwhile is a message, not a traceback."""
    try:
        result = change()
    except KeyError as e:
        st.session_state[FLASH] = ("error", str(e.args[0]) if e.args else str(e))
        return
    st.session_state[FLASH] = ("success", message)
    st.session_state.pop(PENDING, None)
    if undoable:
        st.session_state[UNDO] = result
    else:
        st.session_state.pop(UNDO, None)


def _confirm_box(index: state.Index, names: dict[int, str]) -> None:
    """The pending merge or split, with Confirm and Cancel."""
    kind, a, b = st.session_state[PENDING]
    with st.container(border=True):
        if kind == "merge":
            st.warning(f"Merge **{names.get(b, b)}** into **{names.get(a, a)}**? All faces of"
                       f" {names.get(b, b)} move to {names.get(a, a)}.")
            change = lambda: merge(index, a, b)  # noqa: E731
            message = f"Merged {names.get(b, b)} into {names.get(a, a)}."
        else:
            st.warning(f"Split {len(b)} face(s) off **{names.get(a, a)}** into a new person?")
            change = lambda: split(index, a, list(b))  # noqa: E731
            message = f"Split {len(b)} face(s) off {names.get(a, a)} into a new person."
        c1, c2, _ = st.columns([1, 1, 6])
        c1.button("Confirm", key="people_confirm", type="primary", on_click=_apply,
                  args=(change, message, True))
        c2.button("Cancel", key="people_cancel", on_click=lambda: st.session_state.pop(PENDING))


def _undo_box(index: state.Index) -> None:
    move: Move = st.session_state[UNDO]

    def take_back() -> None:
        back = undo(index, move)
        st.session_state.pop(UNDO, None)
        st.session_state[FLASH] = ("success", f"Undone: {len(move.faces)} face(s) are back with"
                                              f" person {back}.")

    st.button(f"Undo the {move.what}", key="people_undo", on_click=take_back,
              icon=":material/undo:")


def _merge_form(names: dict[int, str]) -> None:
    with st.expander("Merge two people"):
        c1, c2, c3 = st.columns([3, 3, 1], vertical_alignment="bottom")
        keep = c1.selectbox("Keep", list(names), index=None, format_func=names.get,
                            placeholder="choose a person", key="merge_keep")
        other = c2.selectbox("Merge into it", list(names), index=None, format_func=names.get,
                             placeholder="choose a person", key="merge_other")

        def ask() -> None:
            st.session_state[PENDING] = ("merge", keep, other)

        c3.button("Merge...", key="people_merge", disabled=keep is None or other is None
                  or keep == other, on_click=ask)


def render(index: state.Index) -> None:
    st.header("People")
    kind, text = st.session_state.pop(FLASH, ("", ""))
    if text:
        (st.error if kind == "error" else st.success)(text)
    if UNDO in st.session_state:
        _undo_box(index)
    with state.catalog(index) as cat:
        rows = ppl.list_people(cat)
    with st.expander("Find people" if not rows else "Cluster again", expanded=not rows):
        size = st.number_input("Fewest faces of one person", 2, 100, 3, key="people_min_size")
        if st.button("Find people" if not rows else "Cluster again (named people keep their"
                     " faces)", key="people_cluster"):
            with st.spinner("Clustering identity descriptors..."):
                found = find_people(index, int(size))
            st.session_state[FLASH] = ("success", f"{found} people found.")
            st.session_state.pop(UNDO, None)
            st.rerun()
    if not rows:
        st.info("No people yet: cluster the faces by identity to find them.")
        return
    names = {p["id"]: widgets.person_name(p) for p in rows}
    if PENDING in st.session_state:
        _confirm_box(index, names)
    if len(rows) > 1:
        _merge_form(names)
    focus = st.session_state.get(actions.PEOPLE_FOCUS)
    if focus in names:
        shown = [p for p in rows if p["id"] == focus]
        st.button("Show everyone", key="people_all",
                  on_click=lambda: st.session_state.pop(actions.PEOPLE_FOCUS, None))
    else:
        pages = max(1, -(-len(rows) // PAGE))
        page = int(st.number_input(f"Page (of {pages}; {len(rows)} people, largest first)", 1,
                                   pages, 1, key="people_page")) if pages > 1 else 1
        shown = rows[(page - 1) * PAGE:page * PAGE]
    faces = state.album_faces(index)
    with state.catalog(index) as cat:
        members = {p["id"]: cat.faces_of_person(p["id"]) for p in shown}
    for n, p in enumerate(shown):
        pid = p["id"]
        with st.expander(f"{names[pid]} — {p['count']} faces", expanded=n < 3):
            all_ids = np.asarray(members[pid], dtype=np.int64)
            all_ids = all_ids[np.isin(all_ids, faces.ids)]  # awaiting a new model's vector
            widgets.gallery(widgets.face_cards(index, faces, widgets.rows_of(
                faces, all_ids[:SAMPLES])), cols=8, actions=f"person_{pid}")
            _person_tools(index, p, names, faces, all_ids)


def _person_tools(index: state.Index, p: dict, names: dict[int, str], faces,
                  ids: np.ndarray) -> None:
    """Rename, split, download: one row under a person's faces."""
    pid = p["id"]
    c1, c2 = st.columns(2)
    with c1.form(f"people_rename_{pid}", border=False):
        new = st.text_input("Name", value=p["name"] or "", key=f"rename_{pid}")
        if st.form_submit_button("Rename") and new.strip():
            _apply(lambda: rename(index, pid, new.strip()),
                   f"{names[pid]} is now {new.strip()}.")
            st.rerun()
    with c2:
        labels = {int(f): f"face {f} · {faces.labels[r]}"
                  for f, r in zip(ids, widgets.rows_of(faces, ids))}
        picked = st.multiselect("Split off these faces", list(labels), format_func=labels.get,
                                key=f"split_{pid}", placeholder="faces that are someone else")

        def ask() -> None:
            st.session_state[PENDING] = ("split", pid, tuple(picked))

        st.button("Split...", key=f"people_split_{pid}", on_click=ask,
                  disabled=not picked or len(picked) == len(ids))
    widgets.downloads(index, widgets.face_rows(index, faces, widgets.rows_of(faces, ids)),
                      f"person{pid}", f"person_{pid}")
