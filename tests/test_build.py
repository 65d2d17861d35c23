"""`ferindex build` on real photos: a bad-input corpus, SIGKILL mid-build, a query during a build,
and incremental rebuilds (unchanged, renamed, deleted, new model)."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferindex.analysis.album import labeller_id
from ferindex.config import DATA_HINT, data_dir
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.pipeline.query import query_photo
from ferindex.store.catalog import Catalog
from ferindex.store.vectors import VectorIndex

DATA = data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason=DATA_HINT)

ONE_FACE = "photos/face_recognition/examples/obama_small.jpg"
GROUP = ["photos/dlib_faces/2008_001009.jpg", "photos/dlib_faces/2009_004587.jpg"]
CHIPS = "photos/dlib_johns"  # 150x150 one-face chips: fast to detect


def _copy(rel: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / rel, dest)
    return dest


def _chip_album(dest: Path, n: int) -> Path:
    files = sorted((DATA / CHIPS).rglob("*.jpg"))[:n]
    for f in files:
        _copy(str(f.relative_to(DATA)), dest / f"{f.parent.name}_{f.name}")
    return dest


class CountingDetector:
    """The real HOG detector, counting calls (how we know what a rebuild re-detected)."""

    def __init__(self) -> None:
        from ferindex.faces.detect import make_detector

        self.inner = make_detector("hog", upsample=1)
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        return self.inner.detect(rgb)


class RenamedModel:
    """The default model under another id: what a newly trained model looks like to a build."""

    def __init__(self, model, model_id: str) -> None:
        self._m, self.model_id = model, model_id

    def __getattr__(self, name):
        return getattr(self._m, name)


def _check_consistent(index: Path, n_files: int) -> dict:
    """Catalog faces == vectors == FAISS entries; one row per file; no duplicate faces."""
    with Catalog.open(index) as cat:
        model_id = cat.get_meta("model_id")
        counts = cat.counts()
        dup_faces = cat.con.execute(
            "SELECT COUNT(*) FROM (SELECT photo_id, face_idx FROM faces "
            "GROUP BY photo_id, face_idx HAVING COUNT(*) > 1)").fetchone()[0]
        ids, _ = cat.load_vectors("expression", model_id)
        paths = [r[0] for r in cat.con.execute("SELECT path FROM photos")]
        generation = cat.generation
    loaded = VectorIndex.load(index, "expression")
    assert loaded is not None, "no published FAISS index"
    vi, side = loaded
    assert side.generation == generation
    assert counts["photos"] == n_files == len(set(paths))
    assert dup_faces == 0
    assert counts["faces"] == len(ids) == vi.count
    return counts


# -- 1. bad input ------------------------------------------------------------------------------
def _png_bomb(path: Path) -> None:
    """A valid PNG header claiming 100000 x 100000 pixels in a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


def test_bad_input_corpus_is_reported_and_good_faces_indexed(tmp_path):
    album = tmp_path / "album"
    face = _copy(ONE_FACE, album / "face.jpg")
    for rel in GROUP:
        _copy(rel, album / Path(rel).name)
    src = Image.open(face).convert("RGB")
    raw = face.read_bytes()
    good = {  # name -> expected faces
        "face.jpg": 1,
        "cmyk.jpg": 1, "gray16.png": 1, "rgba.png": 1, "animated.gif": 1,
        "exif_rotated.jpg": 1, "visage d’été 😀.jpg": 1,
    }
    src.convert("CMYK").save(album / "cmyk.jpg")
    gray = np.asarray(src.convert("L"), np.uint16) * 257
    Image.fromarray(gray).save(album / "gray16.png")
    assert Image.open(album / "gray16.png").mode.startswith("I")
    src.convert("RGBA").save(album / "rgba.png")
    src.save(album / "animated.gif", save_all=True,
             append_images=[src.transpose(Image.Transpose.FLIP_TOP_BOTTOM)], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated 90 degrees clockwise
    src.transpose(Image.Transpose.ROTATE_270).save(album / "exif_rotated.jpg", exif=exif)
    shutil.copyfile(face, album / "visage d’été 😀.jpg")

    bad = {
        "corrupt.jpg": raw[:200] + bytes(np.random.default_rng(0).integers(0, 255, 4000,
                                                                           dtype=np.uint8)),
        "truncated.jpg": raw[: len(raw) // 3],
        "empty.jpg": b"",
        "text.jpg": b"this is a text file, not a photo\n",
    }
    for name, data in bad.items():
        (album / name).write_bytes(data)
    _png_bomb(album / "bomb.png")
    expected_bad = set(bad) | {"bomb.png", "loop.jpg", "zz_vanishing.jpg", "sub/loop"}
    os.symlink("loop.jpg", album / "loop.jpg")  # a symlink pointing at itself
    (album / "sub").mkdir()
    os.symlink("..", album / "sub" / "loop")  # a folder link back up the tree
    shutil.copyfile(face, album / "zz_vanishing.jpg")
    if os.geteuid() != 0:  # root reads any file, so the case only exists for normal users
        shutil.copyfile(face, album / "unreadable.jpg")
        os.chmod(album / "unreadable.jpg", 0)
        expected_bad.add("unreadable.jpg")

    def delete_mid_build(report, done, total, current):
        (album / "zz_vanishing.jpg").unlink(missing_ok=True)  # listed by the scan, then gone

    report = build_album(album, tmp_path / "idx", BuildOptions(batch_size=4),
                         progress=delete_mid_build)
    reasons = {e["path"]: e["reason"] for e in report.errors + report.scan_problems}
    assert expected_bad <= set(reasons), f"unreported: {expected_bad - set(reasons)}"
    assert all(reasons[n] for n in expected_bad)
    assert "decompression bomb" in reasons["bomb.png"]
    assert "0 bytes" in reasons["empty.jpg"] and "vanished" in reasons["zz_vanishing.jpg"]
    assert not (set(reasons) & set(good)), f"good files reported bad: {reasons}"

    with Catalog.open(tmp_path / "idx") as cat:
        faces = dict(cat.con.execute(
            "SELECT p.path, COUNT(f.id) FROM photos p LEFT JOIN faces f ON f.photo_id = p.id "
            "WHERE p.status = 'ok' GROUP BY p.path").fetchall())
    for name, n in good.items():
        assert faces.get(name) == n, f"{name}: {faces.get(name)} faces indexed, expected {n}"
    detector = CountingDetector()
    for rel in GROUP:  # group photos: every face the detector finds is indexed
        name = Path(rel).name
        assert faces[name] == len(detector.detect(_load(album / name))) >= 2


def _load(path: Path) -> np.ndarray:
    from ferindex.io.decode import load_rgb

    return load_rgb(path)


# -- 2. SIGKILL mid-build ----------------------------------------------------------------------
def _photo_count(index: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_build_then_rerun_is_consistent(tmp_path):
    album = _chip_album(tmp_path / "album", 40)
    index = tmp_path / "idx"
    cmd = [sys.executable, "-m", "ferindex.cli.app", "build", str(album), "--index", str(index),
           "--batch-size", "2", "--no-identity", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _photo_count(index) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _photo_count(index)
    assert 2 <= at_kill < 40, f"kill came too late or too early ({at_kill} photos committed)"

    report = build_album(album, index, BuildOptions(batch_size=8, identity=False))
    assert report.skipped == at_kill  # committed work is kept, not redone
    assert report.new == 40 - at_kill
    counts = _check_consistent(index, 40)
    assert counts["ok"] + counts["noface"] == 40


# -- 3. a query during a build -----------------------------------------------------------------
def test_query_during_build_is_not_blocked(tmp_path):
    album = _chip_album(tmp_path / "album", 12)
    index = tmp_path / "idx"
    paused, resume = threading.Event(), threading.Event()

    def pause_after_first_batch(report, done, total, current):
        if done == 5:  # batches of 2: two batches committed, the builder holds the lock
            paused.set()
            resume.wait(60)

    result: dict = {}
    builder = threading.Thread(target=lambda: result.update(report=build_album(
        album, index, BuildOptions(batch_size=2, identity=False),
        progress=pause_after_first_batch)))
    builder.start()
    try:
        assert paused.wait(120), "build never reached its second batch"
        hits = query_photo(sorted(album.glob("*.jpg"))[0], index, k=3).hits  # committed
        assert len(hits) == 3 and hits[0]["distance"] < 1e-3  # the photo is in the album
        from ferindex.store.lock import WriteLock

        assert not WriteLock(index).try_acquire()  # the build was still running
    finally:
        resume.set()
        builder.join(120)
    assert result["report"].new == 12
    _check_consistent(index, 12)


# -- 4. incremental builds ---------------------------------------------------------------------
def test_incremental_build_skips_moves_deletes_and_reembeds(tmp_path):
    from ferindex.embed import load_model

    album = _chip_album(tmp_path / "album", 6)
    for rel in GROUP:
        _copy(rel, album / "groups" / Path(rel).name)
    index = tmp_path / "idx"
    opts = BuildOptions(identity=False)
    load_model()  # load once, so neither timing below pays for it

    det = CountingDetector()
    t0 = time.perf_counter()
    first = build_album(album, index, opts, detector=det)
    t_first = time.perf_counter() - t0
    assert det.calls == first.detected == 8 and first.faces_added >= 8
    assert first.knn_labelled == first.faces_added  # every new face gets its KNN vote

    det.calls = 0
    t0 = time.perf_counter()
    second = build_album(album, index, opts, detector=det)
    t_second = time.perf_counter() - t0
    print(f"unchanged rebuild: {t_second:.3f} s vs {t_first:.3f} s ({t_second / t_first:.1%})")
    assert det.calls == second.detected == 0 and second.skipped == 8
    assert second.knn_labelled == 0
    assert t_second < 0.10 * t_first  # measured ~1%; the counts above are the strict check

    with Catalog.open(index) as cat:
        before = {r[0]: r[1] for r in cat.con.execute(
            "SELECT f.id, p.path FROM faces f JOIN photos p ON p.id = f.photo_id")}
    group = Path(GROUP[0]).name
    os.rename(album / "groups" / group, album / f"renamed {group}")
    victim = sorted(album.glob("John_*.jpg"))[0]
    victim.unlink()
    third = build_album(album, index, opts, detector=det)
    assert det.calls == 0 and third.moved == 1 and third.deleted == 1
    with Catalog.open(index) as cat:
        after = {r[0]: r[1] for r in cat.con.execute(
            "SELECT f.id, p.path FROM faces f JOIN photos p ON p.id = f.photo_id")}
    moved_ids = {i for i, p in before.items() if p == f"groups/{group}"}
    assert moved_ids and all(after[i] == f"renamed {group}" for i in moved_ids)
    assert not any(p == victim.name for p in after.values())
    assert third.faces_removed == sum(p == victim.name for p in before.values())

    new_model = RenamedModel(load_model(), "retrained-model")
    fourth = build_album(album, index, opts, detector=det, model=new_model)
    assert det.calls == 0 and fourth.reembedded == len(after)
    assert fourth.knn_labelled == len(after)  # votes recomputed with the new model's vectors
    with Catalog.open(index) as cat:
        assert cat.get_meta("model_id") == "retrained-model"
        assert cat.faces_without_knn("retrained-model", labeller_id(new_model)) == []
    _check_consistent(index, 7)
    vi, side = VectorIndex.load(index, "expression")
    assert side.model_id == "retrained-model" and vi.count == len(after)

    recalibrated = RenamedModel(load_model(), "retrained-model")  # same weights, new label calibration
    recalibrated.card = {**new_model.card, "calibration": {}}
    fifth = build_album(album, index, opts, detector=det, model=recalibrated)
    assert fifth.reembedded == 0 and fifth.knn_labelled == len(after)  # stale labels redone, vectors kept


def _recalibrated(model, **calibration):
    """The same weights under the same id with other parts of the card's calibration: what a
    release that only recalibrates the model ships."""
    from ferindex.embed import ExpressionModel

    card = {**model.card, "calibration": {**model.card.get("calibration", {}), **calibration}}
    return ExpressionModel(card, model.net, model.card_path, model.model_id)


def test_new_softmax_calibration_relabels_from_the_stored_raw_softmax(tmp_path):
    from ferindex.analysis.calibration import reweight
    from ferindex.embed import load_model

    album = _chip_album(tmp_path / "album", 3)
    index = tmp_path / "idx"
    opts = BuildOptions(identity=False)
    model, det = load_model(), CountingDetector()
    n = build_album(album, index, opts, detector=det, model=model).faces_added

    def shown(cat: Catalog, ids: list[int]) -> tuple[np.ndarray, list[str]]:
        details = cat.face_details(ids)
        return np.array([details[f]["probs"] for f in ids]), [details[f]["label"] for f in ids]

    with Catalog.open(index) as cat:
        ids = cat.load_vectors("expression", model.model_id)[0].tolist()
        _, before = shown(cat, ids)
        raw = cat.stored_posteriors(ids, model.model_id, len(model.classes), raw=True)
        net = model.embed_and_proba(cat.chips(ids), cat.chip_landmarks(ids), calibrated=False)[1]
    np.testing.assert_allclose(raw, net, atol=1e-5)  # the network's own softmax is stored

    weight = np.full(len(model.classes), 1e-3)
    weight[model.classes.index("contempt")] = 1.0
    recal = _recalibrated(model, softmax={"tau": 1.0, "class_weight": weight.tolist()})
    det.calls = 0
    second = build_album(album, index, opts, detector=det, model=recal)
    assert det.calls == 0 and second.reembedded == 0  # no network pass over the faces
    assert second.recalibrated == n and second.knn_labelled == n
    with Catalog.open(index) as cat:
        probs, labels = shown(cat, ids)
        assert cat.faces_with_stale_softmax(model.model_id, labeller_id(recal, "softmax"),
                                            len(model.classes)) == []
    np.testing.assert_allclose(probs, reweight(raw, weight), atol=1e-6)
    assert labels == [model.classes[i] for i in probs.argmax(1)] and labels != before

    with Catalog.open(index, create=True) as cat, cat.transaction():  # as a v5 catalog left it
        cat.con.execute("UPDATE faces SET probs_raw = NULL, probs_labeller = NULL WHERE id = ?",
                        (ids[0],))
    third = build_album(album, index, opts, detector=det, model=model)  # back to the shipped card
    assert third.reembedded == 0 and third.recalibrated == n - 1
    with Catalog.open(index) as cat:
        probs_back, labels_back = shown(cat, ids)
    assert labels_back[0] == labels[0]  # nothing to re-derive it from: kept, not blanked
    np.testing.assert_allclose(probs_back[0], probs[0])
    np.testing.assert_allclose(probs_back[1:], reweight(raw[1:], model.class_weight("softmax")), atol=1e-6)
    assert labels_back[1:] == before[1:]

    knn_only = _recalibrated(model, knn={**model.card["calibration"]["knn"], "softmax_weight": 0.0})
    fourth = build_album(album, index, opts, detector=det, model=knn_only)
    assert fourth.recalibrated == 0 and fourth.knn_labelled == n  # the softmax's own part unchanged
