"""The Streamlit UI (ui/app.py) driven by streamlit.testing.v1.AppTest on a small real index
built from ../shared/data/photos: what each page shows, and the messages for a missing index,
an empty index, an upload that is not an image and an upload without a face.

Uploads go through AppTest's file_uploader (real bytes into the same code path as a browser
upload); the browser itself is exercised in test_ui_browser.py.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit", reason="the UI needs streamlit: pip install ferindex[ui]")
pytest.importorskip("plotly", reason="the UI needs plotly: pip install ferindex[ui]")

from streamlit.testing.v1 import AppTest  # noqa: E402

from ferindex.config import DATA_HINT, data_dir  # noqa: E402
from ferindex.pipeline.build import build_album  # noqa: E402
from ferindex.store.catalog import Catalog  # noqa: E402

DATA = data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason=DATA_HINT)

APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"
PHOTOS = "photos"
QUERY = "photos/face_recognition/examples/obama-240p.jpg"  # not in the album
TWIN = "obama_small.jpg"  # in the album (album_index, conftest.py): QUERY's frame, smaller


@pytest.fixture
def own_index(album_index, tmp_path) -> Path:
    """A private copy of the index for tests that write to it (people, labels, rebuilds)."""
    dest = tmp_path / "index"
    shutil.copytree(album_index, dest)
    return dest


def n_faces(index: Path) -> int:
    with Catalog.open(index) as cat:
        return cat.counts()["faces"]


def open_app(index: Path | str, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["index_path"] = str(index)
    at.run()
    if page:
        at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[str]:
    """Captions of every shown image, in page order (photo previews have none)."""
    return [c for img in at.image for c in img.captions if c]


def upload(at: AppTest, key: str, files) -> AppTest:
    at.file_uploader(key=key).set_value(files)
    at.run()
    assert not at.exception, at.exception
    return at


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


BLANK_PNG = png(np.full((240, 320, 3), 128, np.uint8))


# -- index problems ---------------------------------------------------------------------------

def test_no_index_is_a_message(tmp_path):
    at = open_app(tmp_path / "nowhere")
    assert len(at.error) == 1
    assert "no index at" in at.error[0].value and "ferindex build" in at.error[0].value
    assert not at.image


def test_empty_index_is_a_message(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    (album / "blank.png").write_bytes(BLANK_PNG)
    build_album(album, album / ".ferindex")
    at = open_app(album)  # an album folder is accepted: its .ferindex is used
    assert len(at.error) == 1 and "is empty" in at.error[0].value
    assert "1 without a face" in at.error[0].value


def test_index_from_command_line(album_index, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["ui/app.py", "--index", str(album_index)])
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert at.sidebar.text_input(key="index_path").value == str(album_index)
    assert f"{n_faces(album_index)} faces" in at.sidebar.caption[0].value


# -- search -----------------------------------------------------------------------------------

def hit_captions(at: AppTest) -> list[str]:
    """Captions of the search hits ("<label> · 87% similar[ · weak match]"), in rank order."""
    return [c for c in captions(at) if "% similar" in c]


def similarity(caption: str) -> int:
    return int(caption.split(" · ")[1].split("%")[0])


def pick_album_face(at: AppTest, face_id: int) -> AppTest:
    """The album-face source, then "Use" under the face in the thumbnail picker."""
    at.radio(key="search_source").set_value("Pick a face from the album").run()
    at.button(key=f"pick_{face_id}").click().run()
    assert not at.exception, at.exception
    return at


def test_search_upload_shows_nearest_faces_with_photos(album_index):
    at = open_app(album_index, "Search")
    assert "Upload a photo" in at.info[0].value
    upload(at, "search_upload", (Path(QUERY).name, (DATA / QUERY).read_bytes(), "image/jpeg"))
    caps = captions(at)
    assert caps[0].startswith("obama-240p.jpg: ")  # the query face and its label
    hits = hit_captions(at)
    assert len(hits) == n_faces(album_index)  # k=12 > 9 album faces: every face, ranked
    sims = [similarity(c) for c in hits]
    assert sims == sorted(sims, reverse=True) and all(0 <= s <= 100 for s in sims)
    assert all(c.endswith("weak match") == (s < 50) for c, s in zip(hits, sims))
    notes = [c.value for c in at.main.caption]
    assert TWIN in notes[1]  # nearest: the same frame at another size (notes[0]: query note)
    previews = [img for img in at.image if not img.captions[0]]
    assert len(previews) == len(hits)  # each hit in its photo, boxed
    assert [b.label for b in at.get("download_button")] == ["CSV", "JSON", "Face crops (ZIP)"]
    at.slider(key="search_k").set_value(3).run()
    assert len(hit_captions(at)) == 3


def test_search_album_face_picker_excludes_itself_and_filters(own_index):
    from ferindex.analysis.album import set_user_label

    with Catalog.open(own_index) as cat:
        ids = [int(r[0]) for r in cat.con.execute("SELECT id FROM faces ORDER BY id")]
        set_user_label(cat, ids[-1], "surprise")  # the user's label overrides the model's
    at = open_app(own_index, "Search")
    at.radio(key="search_source").set_value("Pick a face from the album").run()
    assert "Pick a face above" in at.info[0].value and not hit_captions(at)
    picker = [c for c in captions(at) if c.startswith("face ")]
    assert len(picker) == len(ids)  # every face is offered with its thumbnail
    at.text_input(key="search_filter").set_value("surprise").run()
    assert [c for c in captions(at) if c.startswith("face ")] == [f"face {ids[-1]} · surprise"]
    at.text_input(key="search_filter").set_value("John_Salley").run()
    assert len([c for c in captions(at) if c.startswith("face ")]) == 3
    at.text_input(key="search_filter").set_value("").run()
    at.button(key=f"pick_{ids[0]}").click().run()
    assert at.session_state["search_face"] == ids[0]
    assert len(hit_captions(at)) == len(ids) - 1  # every other face, not the query itself
    assert all(not c.value.endswith(f"face {ids[0]}") for c in at.main.caption[1:])
    at.multiselect(key="search_expressions").set_value(["surprise"]).run()
    hits = hit_captions(at)
    assert len(hits) == 1 and hits[0].startswith("surprise · ")
    assert any("matching the filters" in m.value for m in at.markdown)


def test_search_similar_button_searches_from_that_face(own_index):
    with Catalog.open(own_index) as cat:
        ids = [int(r[0]) for r in cat.con.execute("SELECT id FROM faces ORDER BY id")]
    at = pick_album_face(open_app(own_index, "Search"), ids[0])
    hit = int(at.main.caption[1].value.split("face ")[-1])  # the nearest hit
    at.button(key=f"similar_hit_{hit}").click().run()
    assert at.session_state["search_face"] == hit
    shown = [int(c.value.split("face ")[-1]) for c in at.main.caption[1:] if "face " in c.value]
    assert hit not in shown and ids[0] in shown  # a new search: the old query is now a hit


def test_search_collapses_identical_photos(own_index, tmp_path):
    with Catalog.open(own_index) as cat:
        album = Path(cat.get_meta("album"))
    copy_album = tmp_path / "album"
    shutil.copytree(album, copy_album, ignore=shutil.ignore_patterns(".ferindex"))
    shutil.copyfile(copy_album / TWIN, copy_album / ("copy_of_" + TWIN))
    build_album(copy_album, own_index)
    with Catalog.open(own_index) as cat:
        twins = [int(r[0]) for r in cat.con.execute(
            "SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE ?"
            " ORDER BY f.id", (f"%{TWIN}",))]
        other = int(cat.con.execute("SELECT MIN(id) FROM faces").fetchone()[0])
    assert len(twins) == 2
    at = pick_album_face(open_app(own_index, "Search"), other)
    notes = [c.value for c in at.main.caption if TWIN in c.value]
    assert len(notes) == 1 and "+1 identical photo(s)" in notes[0]
    at = pick_album_face(open_app(own_index, "Search"), twins[0])
    assert not any(c.value.endswith(f"face {twins[1]}") for c in at.main.caption)


def test_search_bad_uploads_are_messages(album_index):
    at = open_app(album_index, "Search")
    upload(at, "search_upload", ("notes.jpg", b"this is not a photo", "image/jpeg"))
    assert len(at.error) == 1 and at.error[0].value.startswith("notes.jpg: ")
    assert "/tmp" not in at.error[0].value and not captions(at)
    upload(at, "search_upload", ("blank.png", BLANK_PNG, "image/png"))
    assert [w.value for w in at.warning] == ["blank.png: no face found in this photo"]
    assert not captions(at)


def test_search_person_filter(own_index):
    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    with Catalog.open(own_index) as cat:
        pid, members = cat.con.execute(
            "SELECT person_id, GROUP_CONCAT(id) FROM faces WHERE person_id IS NOT NULL"
            " GROUP BY person_id ORDER BY person_id").fetchone()
        first = int(cat.con.execute("SELECT MIN(id) FROM faces").fetchone()[0])
    members = {int(m) for m in members.split(",")}
    at.sidebar.radio(key="page").set_value("Search").run()
    pick_album_face(at, first)
    at.multiselect(key="search_people").set_value([pid]).run()
    shown = {int(c.value.split("face ")[-1]) for c in at.main.caption[1:] if "face " in c.value}
    assert shown and shown <= members


# -- the face dialog (every page's "Open") ---------------------------------------------------

def test_face_dialog_label_person_and_search(own_index):
    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    with Catalog.open(own_index) as cat:
        face, person = cat.con.execute(
            "SELECT id, person_id FROM faces WHERE person_id IS NOT NULL ORDER BY id").fetchone()
        on_photo = cat.con.execute("SELECT COUNT(*) FROM faces WHERE photo_id ="
                                   " (SELECT photo_id FROM faces WHERE id = ?)", (face,)).fetchone()[0]
    at.sidebar.radio(key="page").set_value("Summary").run()
    at.session_state["face_open"] = face  # what "Open" under any card does (its callback)
    at.run()
    head = [m.value for m in at.markdown if m.value.startswith("**Face ")]
    assert head and f"of {on_photo}** on `" in head[0] and f"(face id {face})" in head[0]
    assert "(KNN vote)" in head[0] and "; model: " in head[0]
    at.selectbox(key=f"face_label_{face}").set_value("contempt").run()
    at.button(key="face_label_save").click().run()
    assert "face_open" not in at.session_state  # the dialog closed
    assert at.success[0].value.startswith(f"Face {face} labelled contempt")
    with Catalog.open(own_index) as cat:
        assert cat.user_labels()[face] == "contempt"
    at.session_state["face_open"] = face
    at.run()
    at.button(key="face_person").click().run()
    assert at.sidebar.radio(key="page").value == "People"
    assert [e.label.split(" — ")[0] for e in at.expander if " — " in e.label] == [
        f"person {person}"]  # only that person, with a way back to everyone
    at.button(key="people_all").click().run()
    at.session_state["face_open"] = face
    at.run()
    at.button(key="face_search").click().run()
    assert at.sidebar.radio(key="page").value == "Search"
    assert at.session_state["search_face"] == face and hit_captions(at)


def test_face_dialog_not_a_face(own_index):
    with Catalog.open(own_index) as cat:
        face = int(cat.con.execute("SELECT MIN(id) FROM faces").fetchone()[0])
    total = n_faces(own_index)
    at = open_app(own_index, "Summary")
    at.session_state["face_open"] = face
    at.run()
    at.button(key="face_not_face").click().run()
    assert "not a face" in at.success[0].value
    assert all(not c.endswith(f"face {face}") for c in captions(at))
    assert len(captions(at)) == min(12, total - 1)


# -- classify ---------------------------------------------------------------------------------

def test_classify_shows_numbered_photo_and_one_line_per_face(album_index):
    from ferindex.embed import load_model

    classes = load_model().classes
    at = open_app(album_index, "Classify")
    group = DATA / PHOTOS / "dlib_faces" / "2008_001009.jpg"
    upload(at, "classify_upload", [(group.name, group.read_bytes(), "image/jpeg"),
                                   ("broken.png", b"\x89PNG\r\n\x1a\n broken", "image/png")])
    assert [s.value for s in at.subheader] == [group.name, "broken.png"]
    caps = captions(at)
    assert caps[0] == "2 face(s), numbered left to right"  # the photo with its boxes
    assert len(caps) == 3  # then the two faces of the group photo, left to right
    for j, c in enumerate(caps[1:]):
        assert c.startswith(f"face {j + 1}: ") and c.split(": ")[1] in classes
    lines = [m.value for m in at.markdown if "by KNN vote" in m.value]
    assert len(lines) == 2 and all("model softmax: **" in t for t in lines)
    for line, cap in zip(lines, caps[1:]):
        assert f"**{cap.split(': ')[1]}**" in line
        knn, model = line.split("**")[3], line.split("model softmax: **")[1].split("**")[0]
        assert ("disagree" in line) == (knn != model)
    assert not at.get("plotly_chart")  # no 370-px chart per face any more
    assert len(at.error) == 1 and at.error[0].value.startswith("broken.png: ")


# -- explore ----------------------------------------------------------------------------------

def test_explore_map_picked_faces_ringed_and_coloured(own_index):
    from ferindex.analysis.palette import colours

    at = open_app(own_index, "Explore")
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(len(t["text"]) for t in chart["data"]) == n_faces(own_index)
    groups = [t["name"].rsplit(" (", 1)[0] for t in chart["data"]]
    assert [t["marker"]["color"] for t in chart["data"]] == [colours(groups)[g] for g in groups]
    with Catalog.open(own_index) as cat:
        stored = cat.con.execute("SELECT key FROM meta WHERE key LIKE 'projection:%'").fetchall()
        ids = [int(r[0]) for r in cat.con.execute("SELECT id FROM faces ORDER BY id LIMIT 3")]
    assert len(stored) == 1  # the map is kept in the catalog for the next visit (and the CLI)
    at.multiselect(key="explore_pick").set_value(ids).run()
    assert [int(c.split()[1]) for c in captions(at)] == ids
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    ring = chart["data"][-1]
    assert ring["name"] == "selected (3)" and ring["marker"]["line"]["color"] == "black"
    at.button(key=f"similar_explore_{ids[1]}").click().run()
    assert at.sidebar.radio(key="page").value == "Search"
    assert at.session_state["search_face"] == ids[1] and hit_captions(at)


def test_explore_person_colours_sort_numerically(own_index):
    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    at.sidebar.radio(key="page").set_value("Explore").run()
    at.radio(key="explore_colour").set_value("person").run()
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t["name"].rsplit(" (", 1)[0] for t in chart["data"]]
    people = [n for n in names if n != "no person"]
    assert people == sorted(people, key=lambda n: int(n.split()[-1]))
    assert len({t["marker"]["color"] for t in chart["data"]}) == len(names)


def test_explore_selection_event_is_read():
    from ui.views.explore import selected_ids

    event = {"selection": {"points": [{"customdata": [7]}, {"customdata": 3}, {"customdata": [7]}]}}
    assert selected_ids(type("E", (), event)) == [7, 3]
    assert selected_ids(None) == []


# -- sub-classes, summary ---------------------------------------------------------------------

def test_subclasses_nodes_described_with_top16(album_index):
    from ferindex.analysis.album import load_faces
    from ferindex.analysis.subclasses import SubclassDiscovery

    with Catalog.open(album_index) as cat:
        faces = load_faces(cat)
    names, sizes = np.unique(faces.labels, return_counts=True)
    largest = str(names[np.argmax(sizes)])
    at = open_app(album_index, "Sub-classes")
    at.selectbox(key="sub_expression").set_value(largest).run()
    at.selectbox(key="sub_parts").set_value(2).run()
    at.number_input(key="sub_min_size").set_value(2).run()
    tree = SubclassDiscovery(max_level=2, n_components=2, min_size=2).fit(faces.X, faces.labels)
    nodes = [n for i, n in tree.tree_.items() if i == largest or i.startswith(largest + "/")]
    radio = at.radio(key="sub_node")
    labels = radio.options  # as shown: the node and what sets it apart
    assert len(labels) == len(nodes)
    assert all(f"**{n.id}** — {n.size} faces" in lab for n, lab in zip(nodes, labels)), labels
    assert all("softmax" in lab for lab in labels)
    assert all(f"of {n.id.rsplit('/', 1)[0]})" in lab for n, lab in zip(nodes[1:], labels[1:]))
    assert len(captions(at)) == min(16, nodes[0].size)
    if sizes.max() >= 4:  # two parts of at least 2 faces each: the class must split
        assert len(nodes) >= 3 and nodes[1].id == f"{largest}/0"
        radio.set_value(nodes[1].id).run()
        assert len(captions(at)) == min(16, nodes[1].size)
        assert at.markdown[-1].value.startswith(f"**{nodes[1].id}**") or any(
            m.value.startswith(f"**{nodes[1].id}**") for m in at.markdown)


def test_summary_shows_n_faces(album_index):
    at = open_app(album_index, "Summary")
    assert len(captions(at)) == min(12, n_faces(album_index))
    at.number_input(key="summary_n").set_value(4).run()
    caps = captions(at)
    assert len(caps) == 4 and len({c.split("face ")[1] for c in caps}) == 4
    assert at.markdown[0].value.startswith(f"**4 of {n_faces(album_index)} faces**")
    assert [b.label for b in at.get("download_button")] == ["CSV", "JSON", "Face crops (ZIP)"]
    first = int(caps[0].split("face ")[1])
    at.button(key=f"similar_summary_{first}").click().run()
    assert at.session_state["search_face"] == first and hit_captions(at)


# -- people -----------------------------------------------------------------------------------

def person_heads(at: AppTest) -> list[str]:
    return [e.label for e in at.expander if " — " in e.label]


def test_people_cluster_rename_merge_confirm_undo(own_index):
    at = open_app(own_index, "People")
    assert "No people yet" in at.info[0].value
    at.button(key="people_cluster").click().run()
    assert at.success[0].value.endswith("people found.")
    with Catalog.open(own_index) as cat:
        people = cat.con.execute(
            "SELECT person_id, COUNT(*) FROM faces WHERE person_id IS NOT NULL"
            " GROUP BY person_id ORDER BY COUNT(*) DESC, person_id").fetchall()
        salley = {r[0] for r in cat.con.execute(
            "SELECT f.person_id FROM faces f JOIN photos p ON p.id = f.photo_id"
            " WHERE p.path LIKE 'John_Salley_%'")}
    assert len(people) >= 2 and len(salley) == 1 and None not in salley
    assert person_heads(at) == [f"person {pid} — {n} faces" for pid, n in people]

    first, second = people[0][0], people[1][0]
    at.text_input(key=f"rename_{first}").set_value("Alice")
    at.button(key=f"FormSubmitter:people_rename_{first}-Rename").click().run()
    assert at.success[0].value == f"person {first} is now Alice."
    assert person_heads(at)[0] == f"Alice — {people[0][1]} faces"
    with Catalog.open(own_index) as cat:
        name = cat.con.execute("SELECT name FROM people WHERE id = ?", (first,)).fetchone()[0]
    assert name == "Alice"

    assert at.selectbox(key="merge_keep").value is None  # nothing is pre-filled
    assert at.button(key="people_merge").disabled
    at.selectbox(key="merge_keep").set_value(first)
    at.selectbox(key="merge_other").set_value(second).run()
    at.button(key="people_merge").click().run()
    assert f"Merge **person {second}** into **Alice**?" in at.warning[0].value
    assert len(person_heads(at)) == len(people)  # nothing merged before the confirmation
    at.button(key="people_cancel").click().run()
    assert not at.warning and len(person_heads(at)) == len(people)
    at.button(key="people_merge").click().run()
    at.button(key="people_confirm").click().run()
    assert at.success[0].value == f"Merged person {second} into Alice."
    assert person_heads(at)[0] == f"Alice — {people[0][1] + people[1][1]} faces"
    assert len(person_heads(at)) == len(people) - 1
    with Catalog.open(own_index) as cat:
        gone = cat.con.execute("SELECT COUNT(*) FROM people WHERE id = ?", (second,)).fetchone()
    assert gone[0] == 0

    at.button(key="people_undo").click().run()
    assert at.success[0].value.startswith(f"Undone: {people[1][1]} face(s) are back")
    assert sorted(h.split(" — ")[1] for h in person_heads(at)) == sorted(
        f"{n} faces" for _, n in people)


def test_people_split_with_confirmation(own_index):
    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    with Catalog.open(own_index) as cat:
        pid, n = cat.con.execute("SELECT person_id, COUNT(*) c FROM faces WHERE person_id IS NOT"
                                 " NULL GROUP BY person_id ORDER BY c DESC").fetchone()
        faces = cat.faces_of_person(pid)
    assert at.button(key=f"people_split_{pid}").disabled
    at.multiselect(key=f"split_{pid}").set_value(faces[:1]).run()
    at.button(key=f"people_split_{pid}").click().run()
    assert f"Split 1 face(s) off **person {pid}**" in at.warning[0].value
    at.button(key="people_confirm").click().run()
    with Catalog.open(own_index) as cat:
        assert cat.faces_of_person(pid) == faces[1:]
        new = cat.con.execute("SELECT person_id FROM faces WHERE id = ?", (faces[0],)).fetchone()[0]
    assert new != pid and f"person {new} — 1 faces" in person_heads(at)
    at.button(key="people_undo").click().run()
    with Catalog.open(own_index) as cat:
        assert cat.faces_of_person(pid) == faces


def test_people_ids_are_not_names(own_index):
    """A person named like another person's id: the page renames by id (an int), the CLI's
    string PERSON still finds the name first."""
    from ferindex.analysis.people import resolve_person

    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    with Catalog.open(own_index) as cat:
        people = [p["id"] for p in cat.people()]
    first, second = people[:2]
    at.text_input(key=f"rename_{second}").set_value(str(first))  # second is now named "<first>"
    at.button(key=f"FormSubmitter:people_rename_{second}-Rename").click().run()
    at.text_input(key=f"rename_{first}").set_value("Alice")
    at.button(key=f"FormSubmitter:people_rename_{first}-Rename").click().run()
    assert not at.exception and not at.error
    with Catalog.open(own_index) as cat:
        names = dict(cat.con.execute("SELECT id, name FROM people").fetchall())
        assert names[first] == "Alice" and names[second] == str(first)
        assert resolve_person(cat, str(first)) == second  # CLI: the name wins
        assert resolve_person(cat, first) == first  # an int is always an id


# -- caches follow the index ------------------------------------------------------------------

def test_plain_rerun_reads_no_faces_again(own_index, monkeypatch):
    """A rerun with nothing changed is served from the caches (the stamps are stable)."""
    import ferindex.analysis.album as album

    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()  # people and faces: several rows per stamp
    at.sidebar.radio(key="page").set_value("Summary").run()
    reads, load = [], album.load_faces
    monkeypatch.setattr(album, "load_faces", lambda *a, **k: reads.append(1) or load(*a, **k))
    for _ in range(3):
        at.run()
    assert not reads


def test_new_label_is_shown_without_restart(own_index):
    """Labels change without a generation bump (`ferindex label` writes the catalog's
    labels_version): the next rerun shows the user's label, not the cached one."""
    from ferindex.analysis.album import set_user_label

    at = open_app(own_index, "Summary")
    face = int(at.main.image[0].captions[0].split("face ")[1])
    old = at.main.image[0].captions[0].split(" · ")[0]
    new = "fear" if old != "fear" else "surprise"
    with Catalog.open(own_index) as cat:
        set_user_label(cat, face, new)
    at.run()
    shown = {int(c.split("face ")[1]): c.split(" · ")[0] for c in captions(at)}
    assert shown[face] == new


def test_rebuilt_index_is_shown_without_restart(own_index, tmp_path):
    """Cached arrays are keyed by the catalog generation: a build that adds faces shows up."""
    at = open_app(own_index, "Summary")
    before = n_faces(own_index)
    with Catalog.open(own_index) as cat:
        album = tmp_path / "album"
        shutil.copytree(cat.get_meta("album"), album, ignore=shutil.ignore_patterns(".ferindex"))
    extra = sorted((DATA / PHOTOS / "dlib_johns" / "John_Simm").glob("*.jpg"))[0]
    shutil.copyfile(extra, album / "John_Simm_extra.jpg")
    build_album(album, own_index)  # same relative paths and stats: only the new photo is read
    assert n_faces(own_index) == before + 1
    at.run()
    assert at.markdown[0].value.startswith(f"**{min(12, before + 1)} of {before + 1} faces**")
