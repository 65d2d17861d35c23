"""FAISS vector indexes as derived caches of the catalog (DESIGN §4).

Layout in the index folder, per kind ("expression", "identity"):
  `<kind>.json`            sidecar: the commit point, naming the data file and the catalog
                           generation, model id and metric it was built from
  `<kind>.g<N>.faiss`      the FAISS file for catalog generation N
A writer writes the FAISS file under a fresh name, fsyncs it, then replaces the sidecar with
`os.replace` (atomic on POSIX), so a reader sees either the old or the new pair, never half of
one. A reader whose sidecar is missing or names another generation or model rebuilds the index
from the catalog: persisted if it can take the write lock, in memory otherwise (a build is
running and will write a fresh one when it finishes).

Distances returned are in the model's metric: Euclidean distance (not FAISS's squared L2) or
cosine distance 1 - cos for cosine models (vectors L2-normalised, inner-product index).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store.catalog import Catalog
from ferindex.store.lock import WriteLock

HNSW_THRESHOLD = 200_000  # exact search below this many vectors, HNSW above
HNSW_M = 32
HNSW_EF_SEARCH = 128
METRICS = ("euclidean", "cosine")
SINGLE_THREAD_BELOW = 16  # query batches smaller than this search on one thread


def _faiss():
    import faiss  # deferred: importing faiss costs time that `ferindex info` need not pay

    return faiss


def _on_gpus(index):
    """A copy of `index` on every GPU when faiss was built with GPU support and one is present,
    else `index` itself. HNSW has no GPU form, so it stays on the CPU."""
    faiss = _faiss()
    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError:
        return index


@dataclass
class Sidecar:
    kind: str
    model_id: str
    metric: str
    dim: int
    count: int
    generation: int
    file: str


class VectorIndex:
    """Nearest-neighbour search over face vectors keyed by face id."""

    def __init__(self, index, *, kind: str, model_id: str, metric: str, dim: int) -> None:
        self.index = index  # the CPU index: what is saved
        self._searcher = _on_gpus(index)  # what is searched: a GPU copy with faiss-gpu (the `gpu` extra)
        self.kind = kind
        self.model_id = model_id
        self.metric = metric
        self.dim = dim

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def from_vectors(cls, ids: np.ndarray, X: np.ndarray, *, kind: str, model_id: str,
                     metric: str) -> "VectorIndex":
        """Exact (IndexFlat) below HNSW_THRESHOLD vectors, HNSW above, wrapped in an IDMap."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
        faiss = _faiss()
        X = np.ascontiguousarray(X, np.float32)
        if X.ndim != 2 or not len(X):
            raise ValueError("an index needs at least one vector")
        d = int(X.shape[1])
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        if len(X) > HNSW_THRESHOLD:
            base = faiss.IndexHNSWFlat(d, HNSW_M, faiss_metric)
            base.hnsw.efSearch = HNSW_EF_SEARCH
        elif metric == "cosine":
            base = faiss.IndexFlatIP(d)
        else:
            base = faiss.IndexFlatL2(d)
        index = faiss.IndexIDMap(base)
        index.add_with_ids(cls._prepare(X, metric), np.ascontiguousarray(ids, np.int64))
        return cls(index, kind=kind, model_id=model_id, metric=metric, dim=d)

    @staticmethod
    def _prepare(X: np.ndarray, metric: str) -> np.ndarray:
        X = np.ascontiguousarray(X, np.float32)
        if metric == "cosine":
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        return X

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances (n, k'), face ids (n, k')) nearest first; k' = min(k, count)."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if queries.shape[1] != self.dim:
            raise CatalogError(
                f"query vectors have dimension {queries.shape[1]}, index has {self.dim}"
            )
        k = min(int(k), self.count)
        if k <= 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        D, ids = self._search(self._prepare(queries, self.metric), k)
        if self.metric == "cosine":
            D = 1.0 - D
        else:
            D = np.sqrt(np.maximum(D, 0.0))
        return D.astype(np.float32), ids.astype(np.int64)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search; a few queries run on one thread. Splitting one query across OpenMP
        threads costs more than it saves and collapses on a busy CPU: on 2 shared cores,
        100k x 64-d flat search measured p50 41 ms with 2 threads, 1 ms with one."""
        if len(queries) >= SINGLE_THREAD_BELOW or self._searcher is not self.index:
            return self._searcher.search(queries, k)
        faiss = _faiss()
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def save(self, index_dir: str | Path, generation: int) -> Path:
        """Atomically publish this index as the cache of catalog `generation`."""
        faiss = _faiss()
        index_dir = Path(index_dir)
        name = f"{self.kind}.g{generation}.faiss"
        data = index_dir / name
        tmp = index_dir / f".{name}.tmp{os.getpid()}"
        faiss.write_index(self.index, str(tmp))
        _fsync(tmp)
        os.replace(tmp, data)
        side = Sidecar(self.kind, self.model_id, self.metric, self.dim, self.count,
                       generation, name)
        _write_atomic(sidecar_path(index_dir, self.kind), json.dumps(side.__dict__, indent=1))
        _fsync_dir(index_dir)
        for old in index_dir.glob(f"{self.kind}.g*.faiss"):
            if old.name != name:
                old.unlink(missing_ok=True)
        return data

    @classmethod
    def load(cls, index_dir: str | Path, kind: str) -> tuple["VectorIndex", Sidecar] | None:
        """The published index of `kind`, or None if missing or unreadable."""
        index_dir = Path(index_dir)
        side = read_sidecar(index_dir, kind)
        if side is None:
            return None
        try:
            index = _faiss().read_index(str(index_dir / side.file))
        except (OSError, RuntimeError):
            return None
        if index.ntotal != side.count:
            return None
        return cls(index, kind=kind, model_id=side.model_id, metric=side.metric, dim=side.dim), side


def sidecar_path(index_dir: Path, kind: str) -> Path:
    return Path(index_dir) / f"{kind}.json"


def read_sidecar(index_dir: str | Path, kind: str) -> Sidecar | None:
    """The published sidecar of `kind`, or None if missing or unreadable."""
    try:
        return Sidecar(**json.loads(sidecar_path(Path(index_dir), kind).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def open_index(catalog: Catalog, index_dir: str | Path, *, kind: str, model_id: str,
               metric: str, lock: WriteLock | None = None) -> VectorIndex:
    """A search-ready index for (kind, model_id) that matches the catalog's current data.

    Uses the published file when its sidecar records the catalog's generation and model;
    otherwise rebuilds from the catalog and publishes it when the write lock is (or can be)
    held. `lock`: a lock the caller already holds (a build), else one is tried without waiting.
    """
    index_dir = Path(index_dir)
    generation = catalog.generation
    loaded = VectorIndex.load(index_dir, kind)
    if loaded is not None:
        vi, side = loaded
        if side.generation == generation and side.model_id == model_id and side.metric == metric:
            return vi
    ids, X = catalog.load_vectors(kind, model_id)
    if not len(ids):
        raise CatalogError(
            f"index {index_dir} holds no {kind} vectors for model {model_id}:"
            " run `ferindex build` on an album with faces"
        )
    vi = VectorIndex.from_vectors(ids, X, kind=kind, model_id=model_id, metric=metric)
    own = lock if lock is not None else WriteLock(index_dir)
    took = lock is None and own.try_acquire()
    try:
        # Re-read the generation under the lock: a build may have committed meanwhile.
        if own.held and catalog.generation == generation:
            vi.save(index_dir, generation)
    finally:
        if took:
            own.release()
    return vi


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """fsync a directory so the rename itself survives a power loss (no-op where unsupported)."""
    try:
        _fsync(path)
    except OSError:
        pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
