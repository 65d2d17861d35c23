"""Catalog schema and migrations, atomic FAISS publishing, stale-cache rebuilds, the write lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ferindex.errors import CatalogError
from ferindex.store import ann
from ferindex.store import catalog as catalog_mod
from ferindex.store import vectors as vectors_mod
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord, Predictions
from ferindex.store.lock import WriteLock
from ferindex.store.vectors import (VectorIndex, fresh_sidecar, open_index, remove_stale_tmp,
                                    sidecar_path)

MODEL = "test-model"


def _face(rng, x0=0, dim=8) -> FaceRecord:
    return FaceRecord(box=(x0, 0, x0 + 10, 10), score=1.0,
                      landmarks=rng.random((68, 2), dtype=np.float32),
                      chip=rng.integers(0, 255, (48, 48), dtype=np.uint8),
                      chip_landmarks=rng.random((68, 2), dtype=np.float32) * 48,
                      vectors={("expression", MODEL): rng.standard_normal(dim).astype(np.float32)},
                      probs=np.full(7, 1 / 7, np.float32), label="neutral", probs_model=MODEL)


def _photo(rng, path, n_faces=2) -> PhotoRecord:
    return PhotoRecord(path, size=100, mtime_ns=1, hash=path + "-hash",
                       status="ok" if n_faces else "noface",
                       faces=[_face(rng, 20 * i) for i in range(n_faces)])


@pytest.fixture
def cat(tmp_path):
    c = Catalog.open(tmp_path / "idx", create=True)
    yield c
    c.close()


def test_fresh_catalog_schema_wal_and_cascade(cat):
    rng = np.random.default_rng(0)
    assert cat.schema_version == catalog_mod.SCHEMA_VERSION
    assert cat.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in cat.con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"photos", "faces", "vectors", "people", "runs", "meta"} <= tables
    with cat.transaction():
        pid = cat.add_photo(_photo(rng, "a.jpg", 2))
        cat.add_photo(_photo(rng, "b.jpg", 1))
    assert cat.counts() == {"photos": 2, "ok": 2, "errors": 0, "noface": 0, "faces": 3}
    ids, X = cat.load_vectors("expression", MODEL)
    assert X.shape == (3, 8) and len(set(ids.tolist())) == 3
    chips = cat.chips(ids.tolist())
    assert chips.shape == (3, 48, 48) and chips.dtype == np.uint8
    assert cat.chip_landmarks(ids.tolist()).shape == (3, 68, 2)
    with cat.transaction():
        cat.delete_photos([pid])
    assert cat.counts()["faces"] == 1
    assert len(cat.load_vectors("expression", MODEL)[0]) == 1  # vectors cascade too


def test_transaction_rolls_back_on_interrupt(cat):
    rng = np.random.default_rng(1)
    with pytest.raises(KeyboardInterrupt):
        with cat.transaction():
            cat.add_photo(_photo(rng, "a.jpg"))
            cat.bump_generation()
            raise KeyboardInterrupt
    assert cat.counts()["photos"] == 0 and cat.generation == 0


def test_migration_hook_runs_and_versions_are_checked(tmp_path, monkeypatch):
    idx = tmp_path / "idx"
    Catalog.open(idx, create=True).close()
    current = catalog_mod.SCHEMA_VERSION
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(catalog_mod.MIGRATIONS, current,
                        lambda con: con.execute("ALTER TABLE photos ADD COLUMN rating INTEGER"))
    with pytest.raises(CatalogError, match="run `ferindex build` to upgrade"):
        Catalog.open(idx)  # readers never migrate
    with Catalog.open(idx, create=True) as c:
        assert c.schema_version == current + 1 and c.get_meta("schema_version") == str(current + 1)
        cols = {r[1] for r in c.con.execute("PRAGMA table_info(photos)")}
        assert "rating" in cols
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", current)
    with pytest.raises(CatalogError, match="newer than this ferindex"):
        Catalog.open(idx)


OLD_PROBS = np.eye(7, dtype=np.float32)[4]  # the softmax posterior of every face of _old_catalog


def _old_catalog(idx, user_labels_json: str | None = None, version: int = 1) -> None:
    """A catalog as schema `version` wrote it (its migrations from an empty file), with 3 faces
    whose model softmax is OLD_PROBS / 'neutral' and, in v1, user labels as meta JSON."""
    import sqlite3

    idx.mkdir(parents=True)
    con = sqlite3.connect(idx / catalog_mod.CATALOG_NAME, isolation_level=None)
    con.execute("BEGIN")
    for v in range(version):
        catalog_mod.MIGRATIONS[v](con)
    con.execute(f"PRAGMA user_version = {version}")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?), ('generation', '3')", (str(version),))
    con.execute("INSERT INTO photos (id, path, size, mtime_ns, status, indexed_at)"
                " VALUES (1, 'a.jpg', 1, 1, 'ok', 0)")
    for fid in (1, 2, 3):
        con.execute("INSERT INTO faces (id, photo_id, face_idx, x0, y0, x1, y1, chip, probs, label,"
                    " probs_model) VALUES (?, 1, ?, 0, 0, 9, 9, ?, ?, 'neutral', ?)",
                    (fid, fid, bytes(48 * 48), OLD_PROBS.tobytes(), MODEL))
    if user_labels_json is not None:
        con.execute("INSERT INTO meta VALUES ('user_labels', ?)", (user_labels_json,))
    con.execute("COMMIT")
    con.close()


def test_v1_catalog_migrates_user_labels_to_their_column(tmp_path):
    idx = tmp_path / "idx"
    # face 9 was deleted after it was labelled: its label has nowhere to go and is dropped
    _old_catalog(idx, json.dumps({"1": "happiness", "3": "fear", "9": "anger"}))
    with pytest.raises(CatalogError, match="schema version 1"):
        Catalog.open(idx)
    with Catalog.open(idx, create=True) as c:  # what `ferindex build` does
        assert c.schema_version == catalog_mod.SCHEMA_VERSION  # v1 -> v2 -> ... in one open
        assert c.user_labels() == {1: "happiness", 3: "fear"}
        assert c.get_meta("user_labels") is None  # moved, not copied
        assert c.generation == 3  # data untouched
        details = c.face_details([1, 2])
        assert details[1]["user_label"] == "happiness" and details[1]["label"] == "neutral"
        assert details[2]["user_label"] is None and details[2]["knn_label"] is None
        cols = {r[1] for r in c.con.execute("PRAGMA table_info(faces)")}
        assert {"user_label", "knn_label", "knn_probs", "knn_model"} <= cols


def test_v1_catalog_with_broken_user_labels_is_refused_untouched(tmp_path):
    idx = tmp_path / "idx"
    _old_catalog(idx, "[not json")
    with pytest.raises(CatalogError, match="user_labels"):
        Catalog.open(idx, create=True)
    import sqlite3

    con = sqlite3.connect(idx / catalog_mod.CATALOG_NAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1  # rolled back
    cols = {r[1] for r in con.execute("PRAGMA table_info(faces)")}
    con.close()
    assert "user_label" not in cols


def test_v5_catalog_migrates_and_keeps_its_softmax_labels(tmp_path):
    """A catalog from before the raw softmax was stored keeps its shown softmax and labels; with
    nothing to re-derive them from, no calibration ever lists its faces as stale."""
    idx = tmp_path / "idx"
    _old_catalog(idx, version=5)
    with Catalog.open(idx, create=True) as c:
        assert c.schema_version == catalog_mod.SCHEMA_VERSION
        cols = {r[1] for r in c.con.execute("PRAGMA table_info(faces)")}
        assert {"probs_raw", "probs_labeller"} <= cols
        details = c.face_details([1, 2, 3])
        assert [details[f]["label"] for f in (1, 2, 3)] == ["neutral"] * 3
        np.testing.assert_array_equal(details[1]["probs"], OLD_PROBS)
        np.testing.assert_array_equal(c.stored_posteriors([1, 2], MODEL, 7), [OLD_PROBS] * 2)
        assert np.isnan(c.stored_posteriors([1, 2], MODEL, 7, raw=True)).all()
        assert c.faces_with_stale_softmax(MODEL, f"{MODEL}:any", 7) == []
        assert c.generation == 3


def test_softmax_of_another_calibration_is_listed_when_its_raw_softmax_is_stored(cat):
    rng = np.random.default_rng(6)
    with cat.transaction():
        cat.add_photo(_photo(rng, "a.jpg", 4))
    ids = cat.load_vectors("expression", MODEL)[0].tolist()
    raw = np.full((4, 7), 1 / 7, np.float32)
    with cat.transaction():  # ids[3] stays as an old catalog left it: no raw softmax
        cat.set_predictions(ids[:3], Predictions(raw=raw[:3], probs=raw[:3], labels=["anger"] * 3,
                                                 model_id=MODEL, labeller=f"{MODEL}:old"))
        cat.con.execute("UPDATE faces SET probs_raw = ? WHERE id = ?", (b"bad", ids[2]))
    assert cat.faces_with_stale_softmax(MODEL, f"{MODEL}:old", 7) == []
    assert cat.faces_with_stale_softmax(MODEL, f"{MODEL}:new", 7) == ids[:2]  # damaged raw: kept
    assert cat.faces_with_stale_softmax("other", "other:new", 7) == []
    assert cat.face_details([ids[3]])[ids[3]]["label"] == "neutral"


def test_labels_people_and_thumbnails_api(cat):
    rng = np.random.default_rng(5)
    with cat.transaction():
        cat.add_photo(_photo(rng, "a.jpg", 3))
    ids = cat.load_vectors("expression", MODEL)[0].tolist()
    v0 = cat.labels_version
    with cat.transaction():
        cat.set_user_label(ids[0], "happiness")
        cat.set_knn_labels(ids, np.eye(7, dtype=np.float32)[[1, 2, 2]], ["a", "b", "b"], MODEL)
        cat.set_predictions(ids, Predictions(raw=np.eye(7, dtype=np.float32)[[0, 1, 2]],
                                             probs=np.eye(7, dtype=np.float32)[[3, 4, 5]],
                                             labels=["c", "d", "e"], model_id=MODEL,
                                             labeller=f"{MODEL}:cal"))
    assert cat.labels_version > v0
    assert cat.user_labels() == {ids[0]: "happiness"}
    assert cat.label_counts() == {"b": 2, "happiness": 1}  # user label first, then KNN
    assert cat.faces_without_knn(MODEL) == [] and cat.faces_without_knn("other") == []
    assert cat.faces_without_knn(MODEL, "recalibrated") == ids  # labels of another calibration are stale
    posteriors = cat.stored_posteriors([ids[2], 12345, ids[0]], MODEL, 7)
    np.testing.assert_array_equal(posteriors[[0, 2]], np.eye(7)[[5, 3]])
    assert np.isnan(posteriors[1]).all() and np.isnan(cat.stored_posteriors(ids, "other", 7)).all()
    np.testing.assert_array_equal(cat.stored_posteriors(ids, MODEL, 7, raw=True), np.eye(7)[:3])
    np.testing.assert_array_equal(cat.face_details([ids[1]])[ids[1]]["knn_probs"], np.eye(7)[2])
    with pytest.raises(CatalogError, match="no face with id 999"):
        cat.set_user_label(999, "fear")
    sub_ids, X = cat.load_vectors("expression", MODEL, face_ids=[ids[2], ids[0], 12345])
    assert sub_ids.tolist() == [ids[0], ids[2]] and X.shape == (2, 8)
    assert cat.vector_models("expression") == [MODEL] and cat.vector_models("identity") == []
    assert set(cat.thumbnails(ids)) == set(ids)
    with cat.transaction():
        a, b = cat.add_person(), cat.add_person("Ann")
        cat.set_person(ids[:2], a)
        cat.set_person(ids, b, only_unassigned=True)
    assert cat.find_person("Ann") == b and cat.find_person(str(a)) == a
    assert cat.find_person("nobody") is None
    assert cat.people() == [{"id": a, "name": None, "count": 2, "sample_face": ids[0]},
                            {"id": b, "name": "Ann", "count": 1, "sample_face": ids[2]}]
    assert cat.named_person_faces() == {ids[2]: b}
    with cat.transaction():
        cat.rename_person(a, "Bo")
        cat.merge_people(b, a)
    assert cat.people() == [{"id": b, "name": "Ann", "count": 3, "sample_face": ids[0]}]
    assert cat.faces_of_person(b) == ids
    with cat.transaction():
        cat.rename_person(b, None)
        cat.delete_unnamed_people()
    assert cat.people() == [] and cat.face_count([1]) == 3


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(CatalogError, match="no catalog at"):
        Catalog.open(tmp_path / "nowhere")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_vector_index_distances_match_numpy(metric, monkeypatch):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 16)).astype(np.float32)
    ids = np.arange(100, 150)
    q = rng.standard_normal(16).astype(np.float32)
    if metric == "cosine":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        ref = 1 - Xn @ (q / np.linalg.norm(q))
    else:
        ref = np.linalg.norm(X - q, axis=1)
    order = np.argsort(ref)[:5]
    for flat_max in (10**9, 10):  # exact flat index, then the IVF path
        monkeypatch.setattr(ann, "FLAT_MAX", flat_max)
        vi = VectorIndex.from_vectors(ids, X, kind="expression", model_id=MODEL, metric=metric)
        D, I = vi.search(q, 5)
        assert I[0].tolist() == (ids[order]).tolist()
        np.testing.assert_allclose(D[0], ref[order], rtol=1e-4, atol=1e-4)


CAT_ID = "c0ffee" * 5 + "00"


def test_atomic_publish_keeps_old_index_when_write_fails(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    VectorIndex.from_vectors(np.arange(10), X, kind="expression", model_id=MODEL,
                             metric="euclidean").save(tmp_path, 1, CAT_ID)
    real_replace = os.replace

    def crash_on_sidecar(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(vectors_mod.os, "replace", crash_on_sidecar)
    bigger = VectorIndex.from_vectors(np.arange(20), np.vstack([X, X]), kind="expression",
                                      model_id=MODEL, metric="euclidean")
    with pytest.raises(CatalogError, match="No space left on device.*catalog is complete"):
        bigger.save(tmp_path, 2, CAT_ID)
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*tmp*"))  # a failed write leaves no temporary file
    loaded, side = VectorIndex.load(tmp_path, "expression")
    assert side.generation == 1 and loaded.count == 10  # the old pair, intact
    bigger.save(tmp_path, 2, CAT_ID)
    loaded, side = VectorIndex.load(tmp_path, "expression")
    assert side.generation == 2 and loaded.count == 20 and side.catalog_id == CAT_ID
    assert [p.name for p in tmp_path.glob("expression.g*.faiss")] == [side.file]


def _catalog_with(idx, rng, paths, n_faces=2) -> Catalog:
    cat = Catalog.open(idx, create=True)
    with cat.transaction():
        for p in paths:
            cat.add_photo(_photo(rng, p, n_faces))
        cat.bump_generation()
    return cat


def test_recreated_catalog_never_uses_the_old_cache(tmp_path):
    """Issue 11.1: generations restart in a new catalog, so generation and count can match a
    cache whose face ids now mean other faces; the catalog id in the sidecar tells them apart."""
    idx = tmp_path / "idx"
    with _catalog_with(idx, np.random.default_rng(10), ["a.jpg", "b.jpg"]) as old:
        first_id = old.catalog_id
        assert first_id and len(first_id) == 32
        open_index(old, idx, kind="expression", model_id=MODEL, metric="euclidean")
    with Catalog.open(idx, create=True) as again:
        assert again.catalog_id == first_id  # written once, at creation
    for f in idx.glob("catalog.sqlite*"):
        f.unlink()
    with _catalog_with(idx, np.random.default_rng(11), ["c.jpg", "d.jpg"]) as new:
        assert new.catalog_id != first_id and new.generation == 1
        assert fresh_sidecar(new, idx, "expression", model_id=MODEL, metric="euclidean") is None
        vi = open_index(new, idx, kind="expression", model_id=MODEL, metric="euclidean")
        ids, X = new.load_vectors("expression", MODEL)
        D, I = vi.search(X[0], 1)
        assert I[0, 0] == ids[0] and D[0, 0] < 1e-5  # the new vectors, not the old ones
        assert fresh_sidecar(new, idx, "expression", model_id=MODEL, metric="euclidean")


def test_cache_file_of_another_dimension_is_rebuilt(tmp_path):
    """Issue 11.4: a data file that is not what its sidecar says (here a 3-d index) is never
    searched (FAISS would assert on the dimension) and counts as stale for the next build."""
    idx = tmp_path / "idx"
    with _catalog_with(idx, np.random.default_rng(12), ["a.jpg"]) as cat:
        open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
        side = json.loads(sidecar_path(idx, "expression").read_text())
        wrong = VectorIndex.from_vectors(np.arange(2), np.ones((2, 3), np.float32),
                                         kind="expression", model_id=MODEL, metric="euclidean")
        (tmp_path / "other").mkdir()
        wrong.save(tmp_path / "other", 1, CAT_ID)
        (idx / side["file"]).write_bytes(next((tmp_path / "other").glob("*.faiss")).read_bytes())
        assert fresh_sidecar(cat, idx, "expression", model_id=MODEL, metric="euclidean") is None
        vi = open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
        assert vi.dim == 8 and vi.search(np.zeros(8, np.float32), 2)[1].shape == (1, 2)
        assert fresh_sidecar(cat, idx, "expression", model_id=MODEL, metric="euclidean")


def test_stale_index_is_rebuilt_from_catalog(tmp_path):
    rng = np.random.default_rng(4)
    idx = tmp_path / "idx"
    with Catalog.open(idx, create=True) as cat:
        with cat.transaction():
            cat.add_photo(_photo(rng, "a.jpg", 2))
            cat.bump_generation()
        vi = open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
        assert vi.count == 2
        assert json.loads(sidecar_path(idx, "expression").read_text())["generation"] == 1
        with cat.transaction():
            cat.add_photo(_photo(rng, "b.jpg", 3))
            cat.bump_generation()
        # A build holds the lock: the reader rebuilds and publishes without it, and deletes
        # nothing (only the writer prunes old generations).
        with WriteLock(idx):
            vi = open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
            assert vi.count == 5
            assert json.loads(sidecar_path(idx, "expression").read_text())["generation"] == 2
            assert len(list(idx.glob("expression.g*.faiss"))) == 2
        # A missing FAISS file is rebuilt as well.
        for f in idx.glob("expression.g*.faiss"):
            f.unlink()
        assert open_index(cat, idx, kind="expression", model_id=MODEL,
                          metric="euclidean").count == 5


def test_reader_never_takes_the_write_lock(tmp_path, monkeypatch):
    """Issue 11.6: a query rebuilding a missing cache used to save it under write.lock, so a
    build started meanwhile was refused. While the reader writes, the lock stays free."""
    idx = tmp_path / "idx"
    free_while_saving = []
    real_write = vectors_mod._write_atomic

    def write_and_probe(path, data):
        probe = WriteLock(idx)
        free_while_saving.append(probe.try_acquire())
        probe.release()
        real_write(path, data)

    monkeypatch.setattr(vectors_mod, "_write_atomic", write_and_probe)
    with _catalog_with(idx, np.random.default_rng(13), ["a.jpg"]) as cat:
        open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
    assert free_while_saving == [True, True]  # data file, then sidecar


def test_reader_whose_save_fails_still_answers(tmp_path, monkeypatch):
    """A full disk or read-only folder: the query works from memory, leaves no file behind."""
    idx = tmp_path / "idx"

    def full(*args):
        raise OSError(28, "No space left on device")

    with _catalog_with(idx, np.random.default_rng(14), ["a.jpg"]) as cat:
        monkeypatch.setattr(vectors_mod.os, "fsync", full)
        vi = open_index(cat, idx, kind="expression", model_id=MODEL, metric="euclidean")
    assert vi.count == 2
    assert [p.name for p in idx.iterdir() if not p.name.startswith("catalog.sqlite")] == []


def test_stale_tmp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    for name in (f".expression.json.tmp{dead}", f".expression.g3.x.faiss.tmp{os.getpid()}",
                 "expression.json"):
        (tmp_path / name).write_text("x")
    assert remove_stale_tmp(tmp_path) == [f".expression.json.tmp{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".expression.g3.x.faiss.tmp{os.getpid()}", "expression.json"]


def test_sqlite_errors_become_one_message_with_the_next_step(cat):
    import sqlite3

    with pytest.raises(CatalogError, match=r"is damaged .*malformed.*ferindex check --repair"):
        with cat:
            raise sqlite3.DatabaseError("database disk image is malformed")
    with pytest.raises(CatalogError, match="disk full while writing .*run the same command"):
        with Catalog.open(cat.path.parent):
            raise sqlite3.OperationalError("database or disk is full")


def test_read_only_index_folder_is_read_immutable(tmp_path, monkeypatch):
    """A folder the reader cannot write (read-only mount): SQLite cannot create its -shm file,
    so the catalog is opened immutable; reads work and writes fail with a message."""
    idx = tmp_path / "idx"
    _catalog_with(idx, np.random.default_rng(15), ["a.jpg"]).close()
    real_access = os.access
    monkeypatch.setattr(catalog_mod.os, "access",
                        lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    with Catalog.open(idx) as ro:
        assert ro.counts()["faces"] == 2 and ro.catalog_id
        with pytest.raises(CatalogError, match="read-only"):
            with ro:
                with ro.transaction():
                    ro.set_meta("x", "y")


def test_open_index_without_vectors_says_so(cat, tmp_path):
    with pytest.raises(CatalogError, match="holds no expression vectors"):
        open_index(cat, tmp_path / "idx", kind="expression", model_id=MODEL, metric="euclidean")


def test_lock_contention_names_the_holder_and_dies_with_it(tmp_path):
    idx = tmp_path / "idx"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from ferindex.store.lock import WriteLock; "
         f"WriteLock({str(idx)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CatalogError) as err:
            WriteLock(idx).acquire()
        assert f"another build is running on {idx} (pid {holder.pid})" in str(err.value)
        assert not WriteLock(idx).try_acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 5
    lock = WriteLock(idx)
    while not lock.try_acquire() and time.time() < deadline:  # the kernel frees it on death
        time.sleep(0.05)
    assert lock.held
    lock.release()
