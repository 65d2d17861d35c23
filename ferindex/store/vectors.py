"""FAISS vector indexes as derived caches of the catalog (DESIGN §4).

Layout in the index folder, per kind ("expression", "identity"):
  `<kind>.json`               sidecar: the commit point, naming the data file, its size and
                              checksum, and the catalog (its random id and generation), model id
                              and metric it was built from
  `<kind>.g<N>.<id>.faiss`    the FAISS file for generation N of the catalog whose id starts
                              with <id>
Files are written to a temporary name, fsynced and renamed (`os.replace`, atomic on POSIX); the
sidecar last, so a reader sees either the old or the new pair, never half of one. A cache is
used only when its sidecar names this very catalog (generations restart at 0 in a recreated
catalog, so the generation alone could match a cache whose face ids now mean other faces), its
generation, model and metric, and the file has the recorded size, count and dimension.
Otherwise the reader rebuilds the index from the catalog in memory and tries to save it; readers
never take the write lock (a build must never be refused because a query is running), and a
failed save (read-only folder, full disk) only costs the next reader the same rebuild. Only a
build (the writer) deletes the files of other generations.

Distances returned are in the model's metric: Euclidean distance (not FAISS's squared L2) or
cosine distance 1 - cos for cosine models (vectors L2-normalised, inner-product index).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store import ann
from ferindex.store.catalog import Catalog

METRICS = ("euclidean", "cosine")
SINGLE_THREAD_BELOW = 16  # query batches smaller than this search on one thread


def _faiss():
    import faiss  # deferred: importing faiss costs time that `ferindex info` need not pay

    return faiss


def _on_gpus(index):
    """A copy of `index` on every GPU when faiss was built with GPU support and one is present,
    else `index` itself."""
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
    catalog_id: str | None = None  # the catalog's random id (None: written before ids existed)
    bytes: int | None = None  # size of `file`
    blake2b: str | None = None  # checksum of `file` (verified by `ferindex check`)


def stale_reason(side: Sidecar, catalog: Catalog, *, model_id: str, metric: str) -> str | None:
    """Why the cache described by `side` cannot serve `catalog` now, or None when it can."""
    if side.catalog_id is None or side.catalog_id != catalog.catalog_id:
        return "written for another catalog"
    if side.generation != catalog.generation:
        return f"written for generation {side.generation}, the catalog is at {catalog.generation}"
    if side.model_id != model_id or side.metric != metric:
        return f"written for model {side.model_id} ({side.metric})"
    return None


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
        """Exact search up to ann.FLAT_MAX vectors, an IVF trained on X above (store/ann.py)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
        X = np.ascontiguousarray(X, np.float32)
        if X.ndim != 2 or not len(X):
            raise ValueError("an index needs at least one vector")
        index = ann.build(cls._prepare(X, metric), np.ascontiguousarray(ids, np.int64),
                          _faiss_metric(metric))
        return cls(index, kind=kind, model_id=model_id, metric=metric, dim=int(X.shape[1]))

    def apply(self, removed: np.ndarray, ids: np.ndarray, X: np.ndarray) -> None:
        """Take the faces `removed` out, then add vectors X under `ids` (no retraining)."""
        if len(removed):
            self.index.remove_ids(np.ascontiguousarray(removed, np.int64))
        if len(ids):
            self.index.add_with_ids(self._prepare(X, self.metric),
                                    np.ascontiguousarray(ids, np.int64))
        self._searcher = _on_gpus(self.index)

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

    def save(self, index_dir: str | Path, generation: int, catalog_id: str, *,
             prune: bool = True) -> Path:
        """Atomically publish this index as the cache of generation `generation` of catalog
        `catalog_id`; `prune` (writers only) deletes the files of other generations.

        Raises CatalogError (disk full, read-only folder...) leaving no partial file behind:
        the previous pair stays published."""
        index_dir = Path(index_dir)
        name = f"{self.kind}.g{generation}.{catalog_id[:12]}.faiss"
        blob = _faiss().serialize_index(self.index).tobytes()
        side = Sidecar(self.kind, self.model_id, self.metric, self.dim, self.count, generation,
                       name, catalog_id, len(blob), _checksum(blob))
        try:
            _write_atomic(index_dir / name, blob)
            _write_atomic(sidecar_path(index_dir, self.kind),
                          json.dumps(asdict(side), indent=1).encode())
        except OSError as e:
            raise CatalogError(
                f"could not write the {self.kind} vector cache in {index_dir}"
                f" ({e.strerror or e}): the catalog is complete and kept, queries rebuild the"
                " cache in memory meanwhile; free some space (or make the folder writable) and"
                " run `ferindex build` again") from None
        _fsync_dir(index_dir)
        if prune:
            for old in data_files(index_dir, self.kind):
                if old.name != name:
                    old.unlink(missing_ok=True)
        return index_dir / name

    @classmethod
    def load(cls, index_dir: str | Path, kind: str) -> tuple["VectorIndex", Sidecar] | None:
        """The published index of `kind`, or None if missing, unreadable or not what its
        sidecar describes (size, count, dimension)."""
        index_dir = Path(index_dir)
        side = read_sidecar(index_dir, kind)
        if side is None:
            return None
        path = index_dir / side.file
        try:
            if side.bytes is not None and path.stat().st_size != side.bytes:
                return None
            index = _faiss().read_index(str(path))
        except (OSError, RuntimeError):
            return None
        if index.ntotal != side.count or index.d != side.dim:
            return None
        return cls(index, kind=kind, model_id=side.model_id, metric=side.metric, dim=side.dim), side


CLOCK_MARGIN_S = 120.0  # photos indexed up to this long before a cache file was written
# count as newer than it: clock steps, and a reader's cache build that overlaps a build


def refreshed_index(catalog: Catalog, index_dir: str | Path, *, kind: str, model_id: str,
                    metric: str) -> VectorIndex | None:
    """An index of the catalog's current (kind, model_id) vectors, updated in place from the
    published cache when it can be: faces no longer there are removed, new ones appended, and
    only the new vectors are read from the catalog. Built afresh when there is no usable
    cache, or when the album outgrew its layout (store/ann.py: still_fits). None when the
    catalog holds no such vector.

    Face ids alone cannot tell what changed: SQLite reuses the highest ids after a deletion, so
    a cached id may now name another face. Faces are only ever created with a new photo row,
    so every face whose photo was indexed after the cache file was written (less a margin for
    clock steps) is replaced too; whatever else is in both is the same face with the same
    vector (moves keep their faces, a model change is another cache).
    """
    face_ids = catalog.vector_face_ids(kind, model_id)
    if not len(face_ids):
        return None
    loaded = VectorIndex.load(index_dir, kind)
    if loaded is not None:
        vi, side = loaded
        try:
            written = (Path(index_dir) / side.file).stat().st_mtime - CLOCK_MARGIN_S
        except OSError:
            written = None
        if (written is not None and side.catalog_id == catalog.catalog_id
                and side.model_id == model_id and side.metric == metric
                and ann.still_fits(vi.index, len(face_ids), vi.dim)):
            have = np.sort(ann.index_ids(vi.index))
            renewed = catalog.faces_indexed_after(written)
            added = np.union1d(face_ids[~np.isin(face_ids, have, assume_unique=True)],
                               renewed[np.isin(renewed, face_ids, assume_unique=True)])
            if len(added) <= len(face_ids) // 2:  # else one full read is cheaper
                removed = np.union1d(have[~np.isin(have, face_ids, assume_unique=True)],
                                     renewed[np.isin(renewed, have, assume_unique=True)])
                ids, X = catalog.load_vectors(kind, model_id, added.tolist())
                vi.apply(removed, ids, X)
                return vi
    ids, X = catalog.load_vectors(kind, model_id)
    return VectorIndex.from_vectors(ids, X, kind=kind, model_id=model_id, metric=metric)


def _faiss_metric(metric: str) -> int:
    faiss = _faiss()
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def sidecar_path(index_dir: Path, kind: str) -> Path:
    return Path(index_dir) / f"{kind}.json"


def read_sidecar(index_dir: str | Path, kind: str) -> Sidecar | None:
    """The published sidecar of `kind`, or None if missing or unreadable."""
    try:
        return Sidecar(**json.loads(sidecar_path(Path(index_dir), kind).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def fresh_sidecar(catalog: Catalog, index_dir: str | Path, kind: str, *, model_id: str,
                  metric: str) -> Sidecar | None:
    """The sidecar of `kind` when its cache serves `catalog` now (same catalog, generation,
    model and metric, and a data file of the recorded size), else None. Cheap: the data file
    is not read (`VectorIndex.load` checks its count and dimension, `ferindex check` its
    checksum)."""
    side = read_sidecar(index_dir, kind)
    if side is None or stale_reason(side, catalog, model_id=model_id, metric=metric):
        return None
    try:
        size = (Path(index_dir) / side.file).stat().st_size
    except OSError:
        return None
    return side if side.bytes == size else None


def data_files(index_dir: str | Path, kind: str) -> list[Path]:
    """Every FAISS file of `kind` in the index folder, published or left over."""
    return sorted(Path(index_dir).glob(f"{kind}.g*.faiss"))


def open_index(catalog: Catalog, index_dir: str | Path, *, kind: str, model_id: str,
               metric: str) -> VectorIndex:
    """A search-ready index for (kind, model_id) that matches the catalog's current data.

    Uses the published file when it belongs to this catalog, generation, model and metric;
    otherwise brings it up to date from one consistent snapshot of the catalog (incrementally
    when it can: refreshed_index) and tries to publish it (without the write lock, and without
    deleting anything: see the module docstring).
    """
    index_dir = Path(index_dir)
    with catalog.snapshot():
        loaded = VectorIndex.load(index_dir, kind)
        if loaded is not None and stale_reason(loaded[1], catalog, model_id=model_id,
                                               metric=metric) is None:
            return loaded[0]
        generation, catalog_id = catalog.generation, catalog.catalog_id
        vi = refreshed_index(catalog, index_dir, kind=kind, model_id=model_id, metric=metric)
    if vi is None:
        raise CatalogError(
            f"index {index_dir} holds no {kind} vectors for model {model_id}:"
            " run `ferindex build` on an album with faces"
        )
    if catalog_id is not None:  # a catalog from before ids gets one at its next build
        try:
            vi.save(index_dir, generation, catalog_id, prune=False)
        except CatalogError:
            pass  # read-only folder or full disk: this in-memory index serves the query
    return vi


_TMP_PATTERN = re.compile(r"^\..+\.tmp(\d+)$")  # what _write_atomic leaves when killed


def stale_tmp_files(index_dir: str | Path) -> list[Path]:
    """Temporary files left in the index folder by processes that are gone (a kill -9 during a
    cache write); the file of a live process is not stale."""
    return [p for p in sorted(Path(index_dir).iterdir())
            if (m := _TMP_PATTERN.match(p.name)) and not _alive(int(m.group(1)))]


def remove_stale_tmp(index_dir: str | Path) -> list[str]:
    """Delete the stale temporary files of the index folder; returns their names."""
    removed = stale_tmp_files(index_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    return [p.name for p in removed]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def file_checksum(path: Path) -> str:
    """The checksum a sidecar records for its data file."""
    return _checksum(Path(path).read_bytes())


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file, fsync it and rename it over `path`; on any failure
    the temporary file is removed and `path` is left as it was."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
