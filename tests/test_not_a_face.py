"""`Catalog.set_not_a_face`: a marked face is hidden from vectors, people and counts, survives
the photo being detected again (same content, similar box), and can be undone; the v2 -> v3
migration adds the columns without touching existing faces."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ferindex.errors import CatalogError
from ferindex.store import catalog as catalog_mod
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord

MODEL = "m"


def _face(x0: int, rng) -> FaceRecord:
    return FaceRecord(box=(x0, 0, x0 + 40, 40), score=1.0, landmarks=np.zeros((68, 2), np.float32),
                      chip=np.zeros((48, 48), np.uint8),
                      vectors={("expression", MODEL): rng.standard_normal(4).astype(np.float32)},
                      quality=0.9)


def _photo(rng, shift: int = 0) -> PhotoRecord:
    return PhotoRecord("a.jpg", 1, 1, "hash-a", "ok",
                       faces=[_face(0 + shift, rng), _face(100 + shift, rng)])


def test_not_a_face_hides_survives_redetection_and_undoes(tmp_path):
    rng = np.random.default_rng(0)
    with Catalog.open(tmp_path / "idx", create=True) as cat:
        with cat.transaction():
            cat.add_photo(_photo(rng))
            pid = cat.add_person()
            cat.set_person([1, 2], pid)
        g = cat.generation
        with cat.transaction():
            cat.set_not_a_face([2])
        assert cat.generation == g + 1
        assert cat.load_vectors("expression", MODEL)[0].tolist() == [1]
        assert cat.counts()["faces"] == 1 and cat.not_faces() == [2]
        assert cat.faces_of_person(pid) == [1] and cat.people()[0]["count"] == 1
        assert cat.face_details([2])[2]["not_a_face"] is True
        # the photo is detected again (same content, boxes moved by 3 px): the mark follows
        with cat.transaction():
            cat.add_photo(_photo(rng, shift=3))
        (hidden,) = cat.not_faces()
        assert cat.face_details([hidden])[hidden]["box"] == [103, 0, 143, 40]
        assert len(cat.load_vectors("expression", MODEL)[0]) == 1
        with cat.transaction():
            cat.set_not_a_face([hidden], False)
        assert cat.not_faces() == [] and cat.counts()["faces"] == 2
        with cat.transaction():  # undone for good: a later re-detection brings no mark back
            cat.add_photo(_photo(rng))
        assert cat.not_faces() == []
        with pytest.raises(CatalogError, match="no face with id 99"):
            with cat.transaction():
                cat.set_not_a_face([hidden, 99])
        assert cat.not_faces() == []  # rolled back as a whole


def test_v2_catalog_migrates_to_the_current_schema(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    con = sqlite3.connect(idx / catalog_mod.CATALOG_NAME, isolation_level=None)
    con.execute("BEGIN")
    catalog_mod.MIGRATIONS[0](con)
    catalog_mod.MIGRATIONS[1](con)
    con.execute("PRAGMA user_version = 2")
    con.execute("INSERT INTO photos (id, path, size, mtime_ns, hash, status, indexed_at)"
                " VALUES (1, 'a.jpg', 1, 1, 'h', 'ok', 0)")
    con.execute("INSERT INTO faces (id, photo_id, face_idx, x0, y0, x1, y1, chip)"
                " VALUES (1, 1, 0, 0, 0, 9, 9, ?)", (bytes(48 * 48),))
    con.execute("COMMIT")
    con.close()
    with pytest.raises(CatalogError, match="schema version 2"):
        Catalog.open(idx)
    with Catalog.open(idx, create=True) as cat:
        assert cat.schema_version == catalog_mod.SCHEMA_VERSION
        d = cat.face_details([1])[1]
        assert d["quality"] is None and d["not_a_face"] is False
        with cat.transaction():
            cat.set_not_a_face([1])
        assert cat.counts()["faces"] == 0
