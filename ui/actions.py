"""What a user can do with any face the pages show: search from it, open its photo large with
every face numbered, label it, mark it "not a face", go to its person.

Every gallery card carries two buttons ("Similar", "Open"). Both work through callbacks that
only change the session state (which face is open, which page shows what): callbacks run
before the next script run, so they may set the values of widgets (the page radio, the
Search page's source) that the run then draws. The face dialog is open while `OPEN` is set;
its actions and its close button clear it, and a full rerun then closes it.
"""
from __future__ import annotations

import streamlit as st

from ui import state

OPEN = "face_open"  # face id whose dialog is open
FLASH = "face_flash"  # message shown after an action, on the page that follows
SEARCH_PAGE, PEOPLE_PAGE = "Search", "People"
SEARCH_FACE = "search_face"  # the album face the Search page searches from
SEARCH_SOURCE = "search_source"
ALBUM_SOURCE = "Pick a face from the album"
PEOPLE_FOCUS = "people_focus"


def open_face(face_id: int) -> None:
    st.session_state[OPEN] = int(face_id)


def close_face() -> None:
    st.session_state.pop(OPEN, None)


def search_from(face_id: int) -> None:
    """Show the Search page with this album face as the query."""
    close_face()
    st.session_state["page"] = SEARCH_PAGE
    st.session_state[SEARCH_SOURCE] = ALBUM_SOURCE
    st.session_state[SEARCH_FACE] = int(face_id)


def go_to_person(person_id: int) -> None:
    close_face()
    st.session_state["page"] = PEOPLE_PAGE
    st.session_state[PEOPLE_FOCUS] = int(person_id)


def card_buttons(face_id: int, key: str) -> None:
    """The two buttons under a gallery card, side by side; `key` makes them unique on the
    page."""
    with st.container(horizontal=True, gap="small"):
        st.button("Similar", key=f"similar_{key}_{face_id}", on_click=search_from,
                  args=(face_id,), type="tertiary", icon=":material/search:",
                  help="Search from this face")
        st.button(":material/open_in_full:", key=f"open_{key}_{face_id}", on_click=open_face,
                  args=(face_id,), type="tertiary",
                  help="Open: the photo large, label, not a face, person")


def show_flash() -> None:
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH))


def show_open_face(index: state.Index) -> None:
    """Draw the dialog of the open face, if any (called once per run, after the page)."""
    face_id = st.session_state.get(OPEN)
    if face_id is not None:
        _face_dialog(index, int(face_id))


@st.dialog("Face", width="large", on_dismiss=close_face)
def _face_dialog(index: state.Index, face_id: int) -> None:
    from ferindex.analysis.album import photo_boxes, shown_label

    if st.session_state.get(OPEN) != face_id:  # an action below closed it: redraw the app
        st.rerun()
    classes = list(state.model(index).classes)
    with state.catalog(index) as cat:
        d = cat.face_details([face_id]).get(face_id)
        boxes = photo_boxes(cat, face_id) if d else []
        names = {p["id"]: p["name"] for p in cat.people()}
    if d is None:
        st.warning(f"Face {face_id} is no longer in the index.")
        st.button("Close", key="face_close", on_click=close_face)
        return
    label, source, conf = shown_label(d, classes)
    ids = [f for f, _ in boxes]
    photo = state.photo_with_boxes(index.album / d["path"], [b for _, b in boxes],
                                   ids.index(face_id))
    left, right = st.columns([3, 2])
    if photo is None:
        left.warning(f"{d['path']}: the photo cannot be read any more (moved or deleted?).")
    else:
        left.image(photo, width="stretch")
    person = d["person_id"]
    with right:
        st.markdown(f"**Face {ids.index(face_id) + 1} of {len(ids)}** on `{d['path']}` "
                    f"(face id {face_id}): {reading(label, source, conf, d, classes)}")
        st.button("Search from this face", key="face_search", on_click=search_from,
                  args=(face_id,), type="primary", icon=":material/search:")
        st.button(f"Go to {names.get(person) or f'person {person}'}" if person is not None
                  else "No person yet", key="face_person", disabled=person is None,
                  on_click=go_to_person, args=(person,) if person is not None else None,
                  icon=":material/person:")
        st.button("Not a face", key="face_not_face", on_click=mark_not_a_face,
                  args=(index, face_id), icon=":material/block:",
                  help="Hide this detection from every page and search")
        options = ["(no label of mine)", *classes]
        mine = d["user_label"]
        choice = st.selectbox("Your label", options,
                              index=options.index(mine) if mine in options else 0,
                              key=f"face_label_{face_id}")
        st.button("Save label", key="face_label_save", on_click=save_label,
                  args=(index, face_id, None if choice == options[0] else choice))


def reading(label: str, source: str, conf: float | None, d: dict, classes: list[str]) -> str:
    """"**happiness** 82 % (KNN vote); model: neutral 55 %" in one line."""
    how = {"user": "your label", "knn": "KNN vote", "model": "model softmax"}[source]
    text = f"**{label}**" + (f" {conf:.0%}" if conf is not None and source != "user" else "")
    text += f" ({how})"
    probs = d.get("probs")
    if source != "model" and probs is not None and len(probs) == len(classes):
        top = int(probs.argmax())
        text += f"; model: {classes[top]} {float(probs[top]):.0%}"
    return text


def save_label(index: state.Index, face_id: int, label: str | None) -> None:
    """The user's label, then the album's KNN votes again (as `ferindex label`)."""
    from ferindex.analysis.album import label_faces, set_user_label

    with state.catalog(index) as cat:
        set_user_label(cat, face_id, label)
        n = label_faces(cat, state.model(index))
    close_face()
    st.session_state[FLASH] = (f"Face {face_id} labelled {label}" if label else
                               f"Your label of face {face_id} is removed") + \
        f" (KNN labels of {n} faces updated)."


def mark_not_a_face(index: state.Index, face_id: int) -> None:
    with state.catalog(index) as cat, cat.transaction():
        cat.set_not_a_face([face_id], flag=True)
    close_face()
    st.session_state[FLASH] = f"Face {face_id} is marked as not a face: it is no longer shown."
