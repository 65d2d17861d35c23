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

def test_search_upload_shows_nearest_faces_with_photos(album_index):
    at = open_app(album_index, "Search")
    assert "Upload a photo" in at.info[0].value
    upload(at, "search_upload", (Path(QUERY).name, (DATA / QUERY).read_bytes(), "image/jpeg"))
    caps = captions(at)
    assert caps[0].startswith("obama-240p.jpg: ")  # the query face and its label
    hits = caps[1:]
    assert len(hits) == n_faces(album_index)  # k=12 > 9 album faces: every face, ranked
    dists = [float(c.split("d=")[1]) for c in hits]
    assert dists == sorted(dists)
    notes = [c.value for c in at.main.caption]
    assert TWIN in notes[1]  # nearest: the same frame at another size (notes[0]: query note)
    previews = [img for img in at.image if not img.captions[0]]
    assert len(previews) == len(hits)  # each hit's photo with its box
    at.slider(key="search_k").set_value(3).run()
    assert len(captions(at)) == 1 + 3


def test_search_album_face_excludes_itself_and_filters(own_index):
    from ferindex.analysis.album import set_user_label

    with Catalog.open(own_index) as cat:
        ids = [int(r[0]) for r in cat.con.execute("SELECT id FROM faces ORDER BY id")]
        set_user_label(cat, ids[-1], "surprise")  # the user's label overrides the model's
    at = open_app(own_index, "Search")
    at.radio(key="search_source").set_value("Pick a face from the album").run()
    at.selectbox(key="search_face").set_value(ids[0]).run()
    assert captions(at)[0] == f"face {ids[0]} · " + captions(at)[0].split(" · ")[1]
    assert len(captions(at)) == 1 + len(ids) - 1  # every other face, not the query itself
    assert all(not c.value.endswith(f"face {ids[0]}") for c in at.main.caption[1:])
    at.multiselect(key="search_expressions").set_value(["surprise"]).run()
    hits = captions(at)[1:]
    assert len(hits) == 1 and hits[0].startswith("surprise · d=")
    assert "matching the filters" in at.markdown[1].value


def test_search_person_filter(own_index):
    at = open_app(own_index, "People")
    at.button(key="people_cluster").click().run()
    with Catalog.open(own_index) as cat:
        pid, members = cat.con.execute(
            "SELECT person_id, GROUP_CONCAT(id) FROM faces WHERE person_id IS NOT NULL"
            " GROUP BY person_id ORDER BY person_id").fetchone()
    members = {int(m) for m in members.split(",")}
    at.sidebar.radio(key="page").set_value("Search").run()
    at.radio(key="search_source").set_value("Pick a face from the album").run()
    at.multiselect(key="search_people").set_value([pid]).run()
    shown = {int(c.value.split("face ")[-1]) for c in at.main.caption[1:]}
    assert shown and shown <= members


def test_search_bad_uploads_are_messages(album_index):
    at = open_app(album_index, "Search")
    upload(at, "search_upload", ("notes.jpg", b"this is not a photo", "image/jpeg"))
    assert len(at.error) == 1 and at.error[0].value.startswith("notes.jpg: ")
    assert "/tmp" not in at.error[0].value and not captions(at)
    upload(at, "search_upload", ("blank.png", BLANK_PNG, "image/png"))
    assert [w.value for w in at.warning] == ["blank.png: no face found in this photo"]
    assert not captions(at)


# -- classify ---------------------------------------------------------------------------------

def test_classify_shows_label_and_bars_per_face(album_index):
    from ferindex.embed import load_model

    classes = load_model().classes
    at = open_app(album_index, "Classify")
    group = DATA / PHOTOS / "dlib_faces" / "2008_001009.jpg"
    upload(at, "classify_upload", [(group.name, group.read_bytes(), "image/jpeg"),
                                   ("broken.png", b"\x89PNG\r\n\x1a\n broken", "image/png")])
    assert [s.value for s in at.subheader] == [group.name, "broken.png"]
    caps = captions(at)
    assert len(caps) == 2  # the two faces of the group photo, left to right
    for j, c in enumerate(caps):
        assert c.startswith(f"face {j + 1}: ") and c.split(": ")[1] in classes
    texts = [m.value for m in at.markdown if "by KNN vote" in m.value]
    assert len(texts) == 2 and all("model softmax" in t for t in texts)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    for chart in charts:
        names = [t["name"] for t in chart["data"]]
        assert names == ["KNN votes (K=11)", "model softmax"]
        assert all(t["y"] == classes for t in chart["data"])
    assert len(at.error) == 1 and at.error[0].value.startswith("broken.png: ")


# -- explore ----------------------------------------------------------------------------------

def test_explore_map_and_picked_faces(own_index):
    at = open_app(own_index, "Explore")
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(len(t["text"]) for t in chart["data"]) == n_faces(own_index)
    with Catalog.open(own_index) as cat:
        stored = cat.con.execute("SELECT key FROM meta WHERE key LIKE 'projection:%'").fetchall()
        ids = [int(r[0]) for r in cat.con.execute("SELECT id FROM faces ORDER BY id LIMIT 3")]
    assert len(stored) == 1  # the map is kept in the catalog for the next visit (and the CLI)
    at.multiselect(key="explore_pick").set_value(ids).run()
    assert captions(at) == [c for c in captions(at) if c.startswith("face ")]
    assert [int(c.split()[1]) for c in captions(at)] == ids
    at.radio(key="explore_colour").set_value("person").run()
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in chart["data"]] == [f"no person ({n_faces(own_index)})"]


def test_explore_selection_event_is_read():
    from ui.views.explore import selected_ids

    event = {"selection": {"points": [{"customdata": [7]}, {"customdata": 3}, {"customdata": [7]}]}}
    assert selected_ids(type("E", (), event)) == [7, 3]
    assert selected_ids(None) == []


# -- sub-classes, summary ---------------------------------------------------------------------

def test_subclasses_tree_with_top16_grids(album_index):
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
    assert [e.label.strip("\u2003") for e in at.expander] == [
        f"{n.id} — {n.size} faces" for n in nodes]
    for exp, node in zip(at.expander, nodes):
        assert len([c for img in exp.image for c in img.captions]) == min(16, node.size)
    if sizes.max() >= 4:  # two parts of at least 2 faces each: the class must split
        assert len(nodes) >= 3 and nodes[1].id == f"{largest}/0"


def test_summary_shows_n_faces(album_index):
    at = open_app(album_index, "Summary")
    assert len(captions(at)) == min(12, n_faces(album_index))
    at.number_input(key="summary_n").set_value(4).run()
    caps = captions(at)
    assert len(caps) == 4 and len({c.split("face ")[1] for c in caps}) == 4
    assert at.markdown[0].value.startswith(f"**4 of {n_faces(album_index)} faces**")


# -- people -----------------------------------------------------------------------------------

def test_people_cluster_rename_merge_persist(own_index):
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
    heads = [s.value for s in at.subheader]
    assert heads == [f"person {pid} — {n} faces" for pid, n in people]

    first = people[0][0]
    at.text_input(key=f"rename_{first}").set_value("Alice")
    at.button(key=f"FormSubmitter:people_rename_{first}-Rename").click().run()
    assert at.success[0].value == f"person {first} is now Alice."
    assert at.subheader[0].value == f"Alice — {people[0][1]} faces"
    with Catalog.open(own_index) as cat:
        name = cat.con.execute("SELECT name FROM people WHERE id = ?", (first,)).fetchone()[0]
    assert name == "Alice"

    second = people[1][0]
    at.selectbox(key="merge_keep").set_value(first)
    at.selectbox(key="merge_other").set_value(second)
    at.button(key="FormSubmitter:people_merge-Merge").click().run()
    assert at.success[0].value == f"Merged person {second} into Alice."
    assert at.subheader[0].value == f"Alice — {people[0][1] + people[1][1]} faces"
    assert len(at.subheader) == len(people) - 1
    with Catalog.open(own_index) as cat:
        gone = cat.con.execute("SELECT COUNT(*) FROM people WHERE id = ?", (second,)).fetchone()
    assert gone[0] == 0


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
