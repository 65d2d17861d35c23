"""Fault injection (issue 11): kill -9 at chosen points of a build, a full disk (injected and on
a real small tmpfs), damaged catalog pages and caches, unmounted and unreadable folders, a
recreated catalog, and a reader racing a writer.

Every case ends the same way: the catalog equals a clean build of the same files (photos,
faces), no user label, person name or face of a still-existing photo is lost, and every failure
on the way is one message with the documented exit code (with --json: one JSON document).
Needs no research data: the album is made of face crops of the bundled sample pictures; builds
skip identity descriptors to stay fast.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from ferindex.cli.app import app
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.pipeline.query import query_photo
from ferindex.store import vectors as vectors_mod
from ferindex.store.catalog import Catalog

OPTS = BuildOptions(identity=False, batch_size=2, workers=1)  # workers=1: in this process
N_FACES = 6  # one-face photos in the album, plus one photo without a face
runner = CliRunner()


# -- the album and what a clean build of it holds ------------------------------------------------
def _face_photos(n: int) -> list[Image.Image]:
    """n distinct one-face 160x160 photos: crops of the astronaut and of Grace Hopper, shifted,
    mirrored and brightened differently (HOG finds exactly one face in each)."""
    from ferindex.pipeline.sample_album import _matplotlib_jpg, _skimage_png

    sources = [(_skimage_png("astronaut.png"), (175, 76, 266, 167)),
               (_matplotlib_jpg("grace_hopper.jpg"), (180, 139, 367, 326))]
    out = []
    for i in range(n):
        im, (x0, y0, x1, y1) = sources[i % 2]
        m, dx = (x1 - x0) // 2, (i // 2) * 4 - 8
        crop = im.crop((x0 - m + dx, y0 - m + dx // 2, x1 + m + dx, y1 + m + dx // 2))
        crop = crop.resize((160, 160), Image.LANCZOS)
        if (i // 2) % 2:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(ImageEnhance.Brightness(crop).enhance(0.9 + 0.04 * (i // 2)))
    return out


def _write_album(dest: Path, names: list[str]) -> Path:
    """The album's files under `dest` (a subset by name: the rest can be added later)."""
    from ferindex.pipeline.sample_album import _skimage_png

    files = {f"face{i}.jpg": im for i, im in enumerate(_face_photos(N_FACES))}
    files["sub/cup.jpg"] = _skimage_png("coffee.png").resize((160, 107))
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        files[name].save(dest / name, quality=92)
    return dest


ALL = [f"face{i}.jpg" for i in range(N_FACES)] + ["sub/cup.jpg"]


def snapshot(index: Path) -> dict:
    """What must survive every fault: photos (path, status), faces (path, number, box), user
    labels and person names by face position."""
    with Catalog.open(index) as cat:
        def q(sql):
            return [tuple(r) for r in cat.con.execute(sql)]

        return {
            "photos": sorted(q("SELECT path, status FROM photos")),
            "faces": sorted(q("SELECT p.path, f.face_idx, f.x0, f.y0, f.x1, f.y1 FROM faces f"
                              " JOIN photos p ON p.id = f.photo_id")),
            "labels": sorted(q("SELECT p.path, f.face_idx, f.user_label FROM faces f JOIN"
                               " photos p ON p.id = f.photo_id WHERE f.user_label IS NOT NULL")),
            "people": sorted(q("SELECT p.path, f.face_idx, pe.name FROM faces f JOIN photos p"
                               " ON p.id = f.photo_id JOIN people pe ON pe.id = f.person_id")),
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """A clean build of the whole album (no labels)."""
    root = tmp_path_factory.mktemp("reference")
    album = _write_album(root / "album", ALL)
    report = build_album(album, root / "idx", OPTS)
    assert report.errors == [] and report.totals["faces"] == N_FACES
    return snapshot(root / "idx")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path]:
    """(album of the first four face photos and the cup, its index) with a user label on
    face0.jpg and a named person on face1.jpg: copied by each test that changes it."""
    root = tmp_path_factory.mktemp("labelled")
    album = _write_album(root / "album", ALL[:4] + ["sub/cup.jpg"])
    build_album(album, root / "idx", OPTS)
    _label(root / "idx")
    return album, root / "idx"


def _label(index: Path) -> None:
    with Catalog.open(index) as cat:
        ids = dict(cat.con.execute("SELECT p.path, f.id FROM faces f JOIN photos p"
                                   " ON p.id = f.photo_id").fetchall())
        with cat.transaction():
            cat.set_user_label(ids["face0.jpg"], "happiness")
            cat.set_person([ids["face1.jpg"]], cat.add_person("Grace"))


LABELS = [("face0.jpg", 0, "happiness")]
PEOPLE = [("face1.jpg", 0, "Grace")]


def _copy(labelled, tmp_path, add: list[str] = ()) -> tuple[Path, Path]:
    """A private copy of the labelled album and index, with the photos `add` added."""
    album, index = tmp_path / "album", tmp_path / "idx"
    shutil.copytree(labelled[0], album)
    shutil.copytree(labelled[1], index)
    _write_album(album, list(add))
    return album, index


def assert_matches_clean_build(index: Path, reference: dict, labels=LABELS, people=PEOPLE):
    snap = snapshot(index)
    assert snap["photos"] == reference["photos"]
    assert snap["faces"] == reference["faces"]
    assert snap["labels"] == labels and snap["people"] == people
    assert not [p.name for p in index.iterdir() if ".tmp" in p.name]  # no leftovers
    hit = query_photo(index.parent / "album" / "face3.jpg", index, k=1).hits[0]
    assert hit["path"].endswith("face3.jpg") and hit["distance"] < 1e-3  # the cache is right


def cli(*args: str):
    """Run the CLI with --json; the result and its one JSON document."""
    res = runner.invoke(app, [*args, "--json"])
    return res, json.loads(res.stdout)  # exactly one document, or this raises


# -- kill -9 -------------------------------------------------------------------------------------
KILLER = r"""
import os, signal, sys
from contextlib import contextmanager
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.store import catalog, vectors

album, index, point, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = 0

def due():
    global calls
    calls += 1
    return calls == nth

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "commit":  # inside the nth transaction, its work done, before COMMIT
    real_tx = catalog.Catalog.transaction

    @contextmanager
    def transaction(self):
        with real_tx(self) as con:
            yield con
            if due():
                die()

    catalog.Catalog.transaction = transaction
else:  # "cache": in the nth cache file write, its temporary file written, before the rename
    real_write = vectors._write_atomic

    def write(path, data):
        if due():
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            tmp.write_bytes(data[: len(data) // 2])
            die()
        real_write(path, data)

    vectors._write_atomic = write
build_album(album, index, BuildOptions(identity=False, batch_size=1, workers=1))
"""


@pytest.mark.parametrize("point,nth", [("commit", 2), ("cache", 1), ("cache", 2)],
                         ids=["mid-batches", "cache-data-file", "cache-sidecar"])
def test_kill_9_then_rerun_matches_a_clean_build(labelled, reference, tmp_path, point, nth):
    album, index = _copy(labelled, tmp_path, add=ALL[4:6])
    proc = subprocess.run([sys.executable, "-c", KILLER, str(album), str(index), point,
                           str(nth)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if point == "cache":
        assert list(index.glob(".*.tmp*"))  # what a kill during the cache write leaves
        res, doc = cli("check", "--index", str(index))
        assert res.exit_code == 2 and "killed process" in doc["problems"][-1]["problem"]
    res, doc = cli("info", "--index", str(index))
    assert res.exit_code == 0 and doc["last_build"]["finished"] is None  # shown as killed
    rerun = build_album(album, index, OPTS)
    assert rerun.errors == [] and rerun.failed is None
    assert_matches_clean_build(index, reference)


# -- disk full -----------------------------------------------------------------------------------
def test_disk_full_mid_build_is_one_message_and_loses_nothing(labelled, reference, tmp_path,
                                                              monkeypatch):
    """SQLite's "database or disk is full" on the second commit, then ENOSPC on the cache
    write: each is one JSON error (exit 2), info shows the build as stopped with the reason,
    and the next build completes."""
    from ferindex.store import catalog as catalog_mod

    album, index = _copy(labelled, tmp_path, add=ALL[4:6])
    real_tx, commits = catalog_mod.Catalog.transaction, []

    def full_tx(self):
        commits.append(1)
        if len(commits) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real_tx(self)

    monkeypatch.setattr(catalog_mod.Catalog, "transaction", full_tx)
    res, doc = cli("build", str(album), "--index", str(index), "--no-identity",
                   "--batch-size", "1")
    assert res.exit_code == 2 and doc["exit_code"] == 2
    assert "disk full" in doc["error"] and "run the same command again" in doc["error"]
    monkeypatch.undo()
    res, doc = cli("info", "--index", str(index))
    assert doc["last_build"]["interrupted"] and "full" in doc["last_build"]["error"]

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vectors_mod.os, "fsync", no_space)
    res, doc = cli("build", str(album), "--index", str(index), "--no-identity")
    assert res.exit_code == 2 and "No space left on device" in doc["error"]
    assert "catalog is complete" in doc["error"]
    res, doc = cli("query", str(album / "face3.jpg"), "--index", str(index), "--k", "1")
    assert res.exit_code == 0 and doc[0]["path"].endswith("face3.jpg")  # from memory
    monkeypatch.undo()
    assert not list(index.glob(".*.tmp*"))
    build_album(album, index, OPTS)
    assert_matches_clean_build(index, reference)


def _can_mount() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs root and mount namespaces (unshare -m)")
def test_real_full_disk_on_a_small_tmpfs(labelled, reference, tmp_path):
    """The index on a tmpfs with a few KB to spare: the build runs out of space for real."""
    album, index = _copy(labelled, tmp_path, add=ALL[4:6])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    used_kb = sum(p.stat().st_size for p in index.iterdir()) // 1024
    script = (f"mount -t tmpfs -o size={used_kb + 48}k tmpfs {mnt} && cp -a {index} {mnt}/idx"
              f" && {sys.executable} -m ferindex.cli.app build {album} --index {mnt}/idx"
              f" --no-identity --batch-size 1 --json > {tmp_path}/out.json;"
              f" echo $? > {tmp_path}/rc; rm -rf {index} && cp -a {mnt}/idx {index}")
    subprocess.run(["unshare", "-m", "sh", "-c", script], check=True, timeout=300)
    doc = json.loads((tmp_path / "out.json").read_text())
    assert (tmp_path / "rc").read_text().strip() == "2" and doc["exit_code"] == 2, doc
    assert "disk full" in doc["error"] or "No space left" in doc["error"]
    build_album(album, index, OPTS)  # space is back
    assert_matches_clean_build(index, reference)


# -- damaged catalog pages and caches ------------------------------------------------------------
def _page_of(path: Path, needle: bytes) -> int:
    """The number (from 0) of the page that holds `needle` in the file."""
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path.read_bytes().index(needle) // page_size


def test_damaged_catalog_page_is_reported_then_salvaged(labelled, reference, tmp_path):
    album, index = _copy(labelled, tmp_path, add=ALL[4:6])
    build_album(album, index, OPTS)
    with Catalog.open(index) as cat:
        landmarks, = cat.con.execute("SELECT f.landmarks FROM faces f JOIN photos p"
                                     " ON p.id = f.photo_id WHERE p.path = 'face4.jpg'"
                                     ).fetchone()
    db = index / "catalog.sqlite"
    page = _page_of(db, landmarks)
    with open(db, "r+b") as f:  # garble the page holding face4's row
        f.seek(page * 4096)
        f.write(b"\xa5" * 4096)
    for args in (("info", "--index", str(index)),
                 ("query", str(album / "face4.jpg"), "--index", str(index)),
                 ("build", str(album), "--index", str(index), "--no-identity")):
        res, doc = cli(*args)
        assert res.exit_code == 2 and "is damaged" in doc["error"], args
        assert f"ferindex check --repair --index {index}" in doc["error"]
        assert "Traceback" not in res.output
    res, doc = cli("check", "--index", str(index))
    assert res.exit_code == 2 and doc["problems"][0]["what"] == "catalog" and not doc["ok"]
    res, doc = cli("check", "--index", str(index), "--repair")
    assert res.exit_code == 0 and doc["ok"] and "salvaged" in doc["repaired"][0]
    assert list(index.glob("catalog.sqlite.damaged-*"))
    rebuilt = build_album(album, index, OPTS)
    assert rebuilt.detected == 1  # face4.jpg, whose face was lost, is detected again
    assert_matches_clean_build(index, reference)


def test_damaged_cache_never_gives_a_wrong_answer_and_check_repairs_it(labelled, reference,
                                                                      tmp_path):
    album, index = _copy(labelled, tmp_path)
    side = json.loads((index / "expression.json").read_text())
    data = index / side["file"]
    data.write_bytes(data.read_bytes()[:-64] + bytes(64))  # same size, last vector zeroed
    res, doc = cli("check", "--index", str(index))
    assert res.exit_code == 2 and "checksum" in doc["problems"][0]["problem"]
    res, doc = cli("check", "--index", str(index), "--repair")
    assert res.exit_code == 0 and doc["repaired"] == ["rebuilt the expression cache"]
    data = index / json.loads((index / "expression.json").read_text())["file"]
    data.write_bytes(b"garbage")  # not even an index: read as stale, rebuilt in memory
    hit = query_photo(album / "face3.jpg", index, k=1).hits[0]
    assert hit["path"].endswith("face3.jpg") and hit["distance"] < 1e-3
    assert cli("check", "--index", str(index))[1]["ok"]  # the reader published a good one


# -- 11.1: a recreated catalog -------------------------------------------------------------------
def test_recreated_catalog_does_not_reuse_the_old_cache(tmp_path):
    """The issue's reproduction: two builds, catalog deleted (or truncated), rebuilt with the
    same generation and face count: queries must find the photo itself."""
    album = _write_album(tmp_path / "album", ALL[2:4])
    index = album / ".ferindex"
    build_album(album, None, OPTS)  # generation 1: face2, face3
    _write_album(album, ALL[:2])  # face0, face1 sort first: their ids differ from a fresh build
    build_album(album, None, OPTS)  # generation 2
    for how in ("rm", "truncate"):
        for f in index.glob("catalog.sqlite*"):
            f.unlink() if how == "rm" or f.name != "catalog.sqlite" else f.write_bytes(b"")
        rebuilt = build_album(album, None, OPTS)
        assert rebuilt.new == 4
        res, doc = cli("info", "--album", str(album))
        assert doc["caches_fresh"]
        for name in ("face0.jpg", "face3.jpg"):
            res, hits = cli("query", str(album / name), "--album", str(album), "--k", "1")
            assert hits[0]["path"].endswith(name) and hits[0]["distance"] < 1e-3, (how, name)


# -- 11.2: unavailable is not deleted ------------------------------------------------------------
def test_unmounted_folder_keeps_its_photos_faces_and_labels(labelled, reference, tmp_path):
    """Two face photos behind a folder symlink, as on an external drive; the drive goes away
    (the link dangles), comes back; `--prune` is the only way to drop them."""
    album, index = _copy(labelled, tmp_path)
    drive = tmp_path / "drive"
    _write_album(drive, ALL[4:6])
    (album / "usb").symlink_to(drive)
    build_album(album, index, OPTS)
    with Catalog.open(index) as cat:
        fid = cat.con.execute("SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id"
                              " WHERE p.path = 'usb/face4.jpg'").fetchone()[0]
        with cat.transaction():
            cat.set_user_label(fid, "surprise")
    labels = sorted([*LABELS, ("usb/face4.jpg", 0, "surprise")])
    before = snapshot(index)

    drive.rename(tmp_path / "unmounted")
    report = build_album(album, index, OPTS)
    assert report.deleted == 0 and report.faces_removed == 0 and report.errors == []
    assert [p["path"] for p in report.scan_problems] == ["usb"]
    assert sorted(u["path"] for u in report.unavailable) == ["usb/face4.jpg", "usb/face5.jpg"]
    assert all("--prune" in u["reason"] for u in report.unavailable)
    assert snapshot(index) == before
    res, doc = cli("info", "--index", str(index))
    assert len(doc["unavailable"]) == 2 and doc["scan_problems"][0]["path"] == "usb"

    (tmp_path / "unmounted").rename(drive)
    back = build_album(album, index, OPTS)
    assert back.detected == 0 and back.skipped == 7 and back.unavailable == []
    assert snapshot(index) == before and snapshot(index)["labels"] == labels

    drive.rename(tmp_path / "unmounted")
    pruned = build_album(album, index, BuildOptions(identity=False, workers=1, prune=True))
    assert pruned.deleted == 2 and pruned.faces_removed == 2
    assert_matches_clean_build(index, {**reference, **_without(reference, "face4", "face5")})


def _without(ref: dict, *stems: str) -> dict:
    return {k: [r for r in ref[k] if not any(r[0].startswith(s) for s in stems)]
            for k in ("photos", "faces")}


def test_unreadable_folder_and_unstatable_file_are_kept_alike(labelled, reference, tmp_path,
                                                              monkeypatch):
    """Permission changes: a folder that cannot be listed and a file that cannot be stat-ed
    or read keep their catalogued photos, faces and labels, and say so."""
    from ferindex.io import scan as scan_mod

    album, index = _copy(labelled, tmp_path)
    before = snapshot(index)
    real_scandir = scan_mod.os.scandir

    class Refusing:
        """os.scandir refusing the folder sub/, and stat() of face0.jpg."""

        def __init__(self, path):
            if Path(path).name == "sub":
                raise PermissionError(13, "Permission denied", str(path))
            self._it = real_scandir(path)

        def __enter__(self):
            return [_Refused(e) if e.name == "face0.jpg" else e for e in self._it.__enter__()]

        def __exit__(self, *exc):
            return self._it.__exit__(*exc)

    monkeypatch.setattr(scan_mod.os, "scandir", Refusing)
    report = build_album(album, index, OPTS)
    assert report.deleted == 0 and report.errors == []
    assert {u["path"] for u in report.unavailable} == {"face0.jpg", "sub/cup.jpg"}
    assert snapshot(index) == before
    monkeypatch.undo()

    os.utime(album / "face1.jpg", ns=(1, 1))  # stat changed: the file must be read again
    real_open = open

    def refuse_face1(path, *args, **kw):
        if str(path).endswith("face1.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr("builtins.open", refuse_face1)
    report = build_album(album, index, OPTS)
    monkeypatch.undo()
    assert [u["path"] for u in report.unavailable] == ["face1.jpg"] and report.errors == []
    assert snapshot(index) == before
    build_album(album, index, OPTS)
    assert snapshot(index) == before


class _Refused:
    """A DirEntry whose stat() is refused (a folder without search permission)."""

    def __init__(self, entry):
        self._e = entry

    def __getattr__(self, name):
        return getattr(self._e, name)

    def stat(self, **kw):
        raise PermissionError(13, "Permission denied", self._e.path)


# -- readers and writers -------------------------------------------------------------------------
def test_a_query_rebuilding_the_cache_never_blocks_a_build(labelled, reference, tmp_path,
                                                           monkeypatch):
    """Issue 11.6: with the sidecar gone, a query rebuilds the cache and saves it; a build
    started while it saves must run (it used to fail: "another build is running")."""
    album, index = _copy(labelled, tmp_path, add=ALL[4:6])
    (index / "expression.json").unlink()
    real_write, builds = vectors_mod._write_atomic, []

    def write_while_a_build_starts(path, data):
        if not builds:  # the reader's first write (the build's own writes come after)
            builds.append(None)
            builds[0] = build_album(album, index, OPTS)
        real_write(path, data)

    monkeypatch.setattr(vectors_mod, "_write_atomic", write_while_a_build_starts)
    hit = query_photo(album / "face3.jpg", index, k=1).hits[0]
    monkeypatch.undo()
    assert hit["path"].endswith("face3.jpg") and hit["distance"] < 1e-3
    assert builds[0].new == 2
    assert_matches_clean_build(index, reference)


# -- smaller items -------------------------------------------------------------------------------
def test_broken_link_and_fifo_are_scan_problems_listed_by_info(labelled, tmp_path):
    album, index = _copy(labelled, tmp_path)
    (album / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(album / "pipe.jpg")
    for _ in range(2):  # the current state on every build, never "new errors"
        report = build_album(album, index, OPTS)
        assert report.errors == []
        assert {p["path"] for p in report.scan_problems} == {"gone.jpg", "pipe.jpg"}
    res, doc = cli("info", "--index", str(index))
    assert {p["path"] for p in doc["scan_problems"]} == {"gone.jpg", "pipe.jpg"}


def test_faces_removed_counts_the_faces_of_changed_photos(labelled, tmp_path):
    album, index = _copy(labelled, tmp_path)
    two = Image.new("RGB", (320, 160))
    for i, im in enumerate(_face_photos(2)):
        two.paste(im, (160 * i, 0))
    two.save(album / "face2.jpg", quality=92)  # was one face, now two
    report = build_album(album, index, OPTS)
    assert (report.changed, report.faces_added, report.faces_removed) == (1, 2, 1)
    Image.new("RGB", (160, 160), "gray").save(album / "face2.jpg")  # now none
    report = build_album(album, index, OPTS)
    assert (report.changed, report.faces_added, report.faces_removed) == (1, 0, 2)


def test_changing_detection_settings_is_refused_and_changes_nothing(labelled, tmp_path):
    """Issue 11.3: `--detector insightface` (not installed) on an unchanged album used to exit
    0, store the new detector and break every later query."""
    album, index = _copy(labelled, tmp_path)
    for flags in (["--detector", "insightface"], ["--upsample", "2"]):
        res, doc = cli("build", str(album), "--index", str(index), *flags)
        assert res.exit_code == 2 and "was built with --detector hog --upsample 1" in doc["error"]
    res, doc = cli("info", "--index", str(index))
    assert doc["detector"] == "hog" and doc["last_build"]["finished"]
    res, doc = cli("build", str(album), "--index", str(index), "--no-identity")
    assert res.exit_code == 0 and doc["skipped"] == 5
    res, hits = cli("query", str(album / "face3.jpg"), "--index", str(index), "--k", "1")
    assert res.exit_code == 0 and hits[0]["path"].endswith("face3.jpg")


def test_internal_error_is_one_json_document_with_exit_code_3(labelled, monkeypatch):
    import ferindex.pipeline.info as info_mod

    def broken(index_dir):
        raise TypeError("simulated bug")

    monkeypatch.setattr(info_mod, "index_info", broken)
    res, doc = cli("info", "--index", str(labelled[1]))
    assert res.exit_code == 3 and doc["exit_code"] == 3 and "simulated bug" in doc["error"]


def test_check_finds_damaged_chips_and_vectors_and_repairs_them(labelled, reference, tmp_path):
    album, index = _copy(labelled, tmp_path)
    res, doc = cli("check", "--index", str(index))
    assert res.exit_code == 0 and doc["ok"] and doc["problems"] == []
    with Catalog.open(index) as cat:
        ids = dict(cat.con.execute("SELECT p.path, f.id FROM faces f JOIN photos p"
                                   " ON p.id = f.photo_id").fetchall())
        with cat.transaction():
            cat.con.execute("UPDATE faces SET chip = x'00' WHERE id = ?", (ids["face2.jpg"],))
            cat.con.execute("UPDATE vectors SET vec = x'0000' WHERE face_id = ?",
                            (ids["face3.jpg"],))
    res, doc = cli("check", "--index", str(index))
    assert res.exit_code == 2 and {p["what"] for p in doc["problems"]} == {"chips", "vectors"}
    assert "check --repair" in doc["error"]
    res, doc = cli("check", "--index", str(index), "--repair")
    assert res.exit_code == 0 and doc["ok"]
    assert [r.split()[0] for r in doc["repaired"]] == ["marked", "deleted", "rebuilt"]
    rebuilt = build_album(album, index, OPTS)
    assert rebuilt.detected == 1 and rebuilt.reembedded == 1  # face2 detected, face3 embedded
    assert cli("check", "--index", str(index))[1]["ok"]
    assert snapshot(index) == {**_without(reference, "face4", "face5"), "labels": LABELS,
                               "people": PEOPLE}


@pytest.mark.skipif(not _can_mount(), reason="needs root and mount namespaces (unshare -m)")
def test_read_only_index_answers_info_and_query(labelled, tmp_path):
    album, index = _copy(labelled, tmp_path)
    fx = f"{sys.executable} -m ferindex.cli.app"
    script = (f"mount --bind {index} {index} && mount -o remount,ro,bind {index} &&"
              f" {fx} info --index {index} --json > {tmp_path}/info.json &&"
              f" {fx} query {album}/face3.jpg --index {index} --k 1 --json > {tmp_path}/q.json")
    subprocess.run(["unshare", "-m", "sh", "-c", script], check=True, timeout=300)
    assert json.loads((tmp_path / "info.json").read_text())["faces"] == 4
    hit = json.loads((tmp_path / "q.json").read_text())[0]
    assert hit["path"].endswith("face3.jpg") and hit["distance"] < 1e-3
