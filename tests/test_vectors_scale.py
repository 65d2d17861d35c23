"""Vector caches by size (store/ann.py) and their incremental refresh (store/vectors.py):
an IVF reaches recall@10 >= 0.95 against exact search on held-out queries, and a refreshed
cache equals one built from scratch while reading only the new vectors, even when SQLite
reuses the id of a deleted face. Vectors are the shipped model's reference bank (real faces'
expression embeddings) plus jitter; FLAT_MAX is lowered so that small sets take the IVF path."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ferindex.store import ann
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord
from ferindex.store.vectors import VectorIndex, refreshed_index

KIND, MODEL, METRIC = "expression", "test-model", "euclidean"
BANK = Path(ann.__file__).parents[1] / "models" / "default_bank.npz"


def _vectors(n: int, seed: int) -> np.ndarray:
    """Real faces' 64-d expression vectors (the model's reference bank) plus jitter."""
    bank = np.load(BANK)["embeddings"]
    rng = np.random.default_rng(seed)
    base = bank[rng.integers(0, len(bank), n)].astype(np.float32)
    return base + rng.normal(0, 0.02, base.shape).astype(np.float32)


def _faiss_metric(metric: str) -> int:
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def test_plan_by_size_and_memory():
    assert ann.plan_for(ann.FLAT_MAX, 64) == ann.Plan("flat")
    assert ann.plan_for(1_000_000, 64) == ann.Plan("ivf", 1024)  # 256 MB of float32
    assert ann.plan_for(10_000_000, 64) == ann.Plan("ivf-sq8", 4096)  # 2.6 GB: 8-bit codes


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ivf_recall_against_exact(monkeypatch, metric):
    monkeypatch.setattr(ann, "FLAT_MAX", 5_000)
    X, Q = _vectors(60_000, 0), _vectors(300, 1)  # queries: other jitter, not album vectors
    ids = np.arange(len(X), dtype=np.int64) * 7 + 3  # face ids, not row numbers
    vi = VectorIndex.from_vectors(ids, X, kind=KIND, model_id=MODEL, metric=metric)
    assert ann.plan_of(vi.index) == ann.Plan("ivf", 256)
    prep = VectorIndex._prepare
    truth = ids[ann.exact_search(prep(X, metric), prep(Q, metric), 10, _faiss_metric(metric))]
    recall = ann.recall_at_k(vi.search(Q, 10)[1], truth)
    assert recall >= 0.95, recall
    D, I = vi.search(X[:5], 1)
    assert (I[:, 0] == ids[:5]).all() and np.allclose(D[:, 0], 0, atol=1e-3)


def _add_photos(cat: Catalog, name: str, X: np.ndarray) -> None:
    """One photo per vector, committed as one batch like a build does."""
    with cat.transaction():
        for i, x in enumerate(X):
            face = FaceRecord(box=(0, 0, 10, 10), score=1.0,
                              landmarks=np.zeros((68, 2), np.float32),
                              chip=np.zeros((48, 48), np.uint8), vectors={(KIND, MODEL): x})
            cat.add_photo(PhotoRecord(f"{name}{i}.jpg", 1, 1, f"{name}{i}", "ok",
                                      faces=[face]))
        cat.bump_generation()


def _publish(cat: Catalog, index: Path, vi: VectorIndex) -> None:
    vi.save(index, cat.generation, cat.catalog_id)


@pytest.mark.parametrize("flat_max", [ann.FLAT_MAX, 1_000])  # exact (IDMap) and IVF caches
def test_refresh_appends_and_removes_like_a_full_build(tmp_path, monkeypatch, flat_max):
    monkeypatch.setattr(ann, "FLAT_MAX", flat_max)
    index = tmp_path / "idx"
    old, new = _vectors(3_000, 2), _vectors(60, 3)
    with Catalog.open(index, create=True) as cat:
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # indexed an hour ago
        _add_photos(cat, "old", old)
        monkeypatch.setattr(time, "time", real_time)
        _publish(cat, index, refreshed_index(cat, index, kind=KIND, model_id=MODEL,
                                             metric=METRIC))
        assert ann.plan_of(VectorIndex.load(index, KIND)[0].index).layout == (
            "flat" if flat_max > 3_000 else "ivf")

        last = max(cat.photo_index().values(), key=lambda r: r.id)
        top_face = int(cat.vector_face_ids(KIND, MODEL).max())
        with cat.transaction():  # the newest photo goes: SQLite will hand its face id out again
            cat.delete_photos([last.id, 1])
            cat.set_not_a_face([5])  # hidden faces leave the cache too
        _add_photos(cat, "new", new)
        assert top_face in set(cat.vector_face_ids(KIND, MODEL).tolist())  # id reused

        reads = []
        load = cat.load_vectors
        monkeypatch.setattr(cat, "load_vectors", lambda *a, **k: reads.append(a) or load(*a, **k))
        refreshed = refreshed_index(cat, index, kind=KIND, model_id=MODEL, metric=METRIC)
        assert len(reads) == 1 and len(reads[0][2]) == len(new)  # only the new vectors read
        ids, X = load(KIND, MODEL)
    assert sorted(ann.index_ids(refreshed.index).tolist()) == ids.tolist()
    D, I = refreshed.search(X, 1)  # every current vector finds its own face, at distance 0
    assert (I[:, 0] == ids).mean() > 0.99 and np.median(D[:, 0]) < 1e-3
    reused = int(np.flatnonzero(ids == top_face)[0])
    D, I = refreshed.search(X[reused:reused + 1], 1)  # alone: faiss's exact path (batches of 20+
    assert I[0, 0] == top_face and D[0, 0] < 1e-6  # use BLAS, off by ~1e-3); the new vector, not the old
