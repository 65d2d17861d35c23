"""`ferindex export` and ferindex/export/: CSV/JSON rows, crop ZIPs, and XMP sidecars read back
by a real XMP reader (exiftool, Debian package libimage-exiftool-perl, installed by
scripts/install_browser.sh); the photos' bytes never change. Also `find`'s ranking.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferindex.cli.app import app
from ferindex.export import tables
from ferindex.export.xmp import PhotoTags, Region, XmpError, merge
from ferindex.store.catalog import Catalog

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None, reason="no exiftool: apt-get install -y libimage-exiftool-perl (or run"
    " scripts/install_browser.sh as root)")
runner = CliRunner()


def cli(*args: str) -> dict | list:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def exiftool(*args: str) -> list[dict]:
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-G1", *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def digest(folder: Path) -> dict[str, str]:
    """BLAKE2b of every photo under the album (sidecars and the index left out)."""
    return {str(p.relative_to(folder)): hashlib.blake2b(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".xmp"
            and ".ferindex" not in p.parts}


@pytest.fixture
def own_album(album_index, tmp_path) -> Path:
    """A private copy of the session's small real album and its index; returns the album
    folder. The catalog still names the original album: export follows the index's folder
    (an album moved with its .ferindex), so sidecars go beside these copies."""
    dest = tmp_path / "album"
    shutil.copytree(album_index.parent, dest)
    return dest


# -- XMP merge (no reader needed) -------------------------------------------------------------

TAGS = PhotoTags(200, 100, (Region(7, (20, 10, 60, 50), "happiness", "Alice"),
                            Region(8, (100, 20, 140, 60), "neutral", None)))


def test_merge_is_idempotent_and_keeps_other_content():
    first = merge(None, TAGS)
    assert merge(first, TAGS) == first  # a second run changes nothing
    user = first.replace(b"<rdf:li>happiness</rdf:li>", b"<rdf:li>holiday</rdf:li>"
                         b"<rdf:li>happiness</rdf:li>", 1)
    fewer = merge(user, PhotoTags(200, 100, TAGS.regions[1:]))
    text = fewer.decode()
    assert "holiday" in text  # the user's keyword stays
    assert "happiness" not in text and "Alice" not in text  # ours are replaced, not piled up
    assert text.count("ferindex face") == 1 and "ferindex|expression|neutral" in text


def test_merge_refuses_non_xmp():
    with pytest.raises(XmpError):
        merge(b"<html><body>not xmp</body></html>", TAGS)
    with pytest.raises(XmpError):
        merge(b"\x00\x01 binary", TAGS)


def test_tables_csv_and_json():
    rows = [{"face_id": 1, "box": [1, 2, 3, 4], "label": "happiness", "probs": {"a": 0.5},
             "person": None}, {"face_id": 2, "box": [5, 6, 7, 8], "label": "fear, maybe"}]
    text = tables.to_csv(rows)
    lines = text.splitlines()
    assert lines[0] == "face_id,x0,y0,x1,y1,label,probs,person"
    assert lines[1] == '1,1,2,3,4,happiness,"{""a"": 0.5}",'
    assert lines[2] == '2,5,6,7,8,"fear, maybe",,'
    assert json.loads(tables.to_json(rows))[1]["box"] == [5, 6, 7, 8]


# -- ferindex export on a real index ------------------------------------------------------------

@needs_exiftool
def test_export_xmp_read_by_exiftool_photos_unchanged(own_album):
    index = own_album / ".ferindex"
    cli("people", "--index", str(index))
    with Catalog.open(index) as cat, cat.transaction():
        pid = cat.people()[0]["id"]
        cat.rename_person(pid, "Alice Example")
        faces = {int(r[0]): r for r in cat.con.execute(
            "SELECT f.id, p.path, COALESCE(f.user_label, f.knn_label, f.label), f.person_id"
            " FROM faces f JOIN photos p ON p.id = f.photo_id")}
        hidden = int(cat.con.execute(  # a one-face photo's face, marked "not a face"
            "SELECT MIN(f.id) FROM faces f JOIN photos p ON p.id = f.photo_id"
            " WHERE p.path LIKE 'John_Savage_%'").fetchone()[0])
        cat.set_not_a_face([hidden])
    hidden_photo = own_album / faces.pop(hidden)[1]
    group = own_album / "2008_001009.jpg"  # two faces
    user_sidecar = group.with_name(group.name + ".xmp")
    subprocess.run([EXIFTOOL, "-o", str(user_sidecar), "-XMP-dc:Subject=holiday",
                    "-XMP-xmp:Rating=4", str(group)], check=True, capture_output=True)
    before = digest(own_album)

    dry = cli("export", "--index", str(index), "--xmp", "--dry-run")
    assert dry["sidecars_written"] == 0 and len(dry["sidecars"]) == len(before) - 1
    assert {s["status"] for s in dry["sidecars"]} == {"new", "update"}
    assert sorted(p.name for p in own_album.glob("*.xmp")) == [user_sidecar.name]

    doc = cli("export", "--index", str(index), "--xmp")
    assert doc["sidecars_written"] == len(before) - 1
    assert digest(own_album) == before  # not one byte of any photo changed
    assert not hidden_photo.with_name(hidden_photo.name + ".xmp").exists()  # no face left

    for meta in exiftool(*[str(p) for p in sorted(own_album.glob("*.xmp"))]):
        photo = meta["SourceFile"][:-len(".xmp")]
        mine = [r for r in faces.values() if str(own_album / r[1]) == photo]
        labels = sorted({r[2] for r in mine})
        assert meta["XMP-lr:HierarchicalSubject"] == [f"ferindex|expression|{x}" for x in labels] + (
            ["ferindex|person|Alice Example"] if any(r[3] == pid for r in mine) else [])
        subjects = meta["XMP-dc:Subject"]
        subjects = subjects if isinstance(subjects, list) else [subjects]
        assert set(labels) <= set(subjects)
        regions = meta["XMP-mwg-rs:RegionInfo"]["RegionList"]
        assert sorted(r["Description"].split(":")[0] for r in regions) == sorted(
            f"ferindex face {fid}" for fid, r in faces.items() if str(own_album / r[1]) == photo)
        for region in regions:
            fid = int(region["Description"].split()[2].rstrip(":"))
            assert region["Type"] == "Face" and 0 < region["Area"]["W"] <= 1
            assert region.get("Name") == ("Alice Example" if faces[fid][3] == pid else None)
        if photo == str(group):  # the user's own content survived the merge
            assert "holiday" in subjects and meta["XMP-xmp:Rating"] == 4

    again = cli("export", "--index", str(index), "--xmp")
    assert again["sidecars_written"] == 0
    assert {s["status"] for s in again["sidecars"]} == {"unchanged"}


def test_export_rows_and_crops(own_album, tmp_path):
    index = own_album / ".ferindex"
    doc = cli("export", "--index", str(index), "--csv", str(tmp_path / "f.csv"),
              "--json-file", str(tmp_path / "f.json"), "--crops", str(tmp_path / "c.zip"))
    with Catalog.open(index) as cat:
        n = cat.counts()["faces"]
    rows = json.loads((tmp_path / "f.json").read_text())
    assert doc["faces"] == n == len(rows) and not doc["sidecars"]
    assert len((tmp_path / "f.csv").read_text().splitlines()) == n + 1
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        jpgs = [i for i in zf.namelist() if i.endswith(".jpg")]
        assert len(jpgs) == n and "faces.csv" in zf.namelist()
        from PIL import Image

        img = Image.open(io.BytesIO(zf.read(jpgs[0])))
        assert img.format == "JPEG" and min(img.size) >= 32
    assert {Path(r["path"]).parent for r in rows} == {own_album}  # the album as it is now
    r = runner.invoke(app, ["export", "--index", str(index), "--json"])
    assert r.exit_code == 2 and "nothing to export" in json.loads(r.stdout)["error"]
    gone = own_album / "obama_small.jpg"
    gone.unlink()
    plans = {Path(p["photo"]).name: p for p in cli(
        "export", "--index", str(index), "--xmp", "--dry-run")["sidecars"]}
    assert plans[gone.name]["status"] == "skipped" and "not found" in plans[gone.name]["reason"]
    assert {p["status"] for n, p in plans.items() if n != gone.name} == {"new"}


# -- find ranks by what varies ------------------------------------------------------------------

def test_find_ranks_by_vote_then_model_then_quality(own_album):
    index = own_album / ".ferindex"
    with Catalog.open(index) as cat:
        top = cat.con.execute("SELECT COALESCE(user_label, knn_label, label) l, COUNT(*) c"
                              " FROM faces GROUP BY l ORDER BY c DESC").fetchone()[0]
    hits = cli("find", "--index", str(index), "--expression", top, "--k", "50")
    assert len(hits) >= 2 and all(h["label"] == top for h in hits)
    keys = [(h["score"], h["model_prob"], h["quality"]) for h in hits]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)  # a model probability or quality tells ties apart
