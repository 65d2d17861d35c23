"""The SQLite catalog: the single source of truth of an index (DESIGN §4).

Everything a build learns lives here (photos, faces with their aligned chips, vectors, runs);
FAISS files are caches derived from it. WAL mode lets queries read while a build writes, and a
build commits in batches inside explicit transactions, so a crash loses at most the batch in
flight. Every change to faces or vectors bumps `meta.generation` in the same transaction; a
vector index whose sidecar records an older generation is stale.

Paths are stored relative to the album root (POSIX form) so an album folder that carries its
`.ferindex/` along can be moved without losing anything.

Three labels per face, each in its own columns (schema v2), because each has its own lifetime:
- `label`, `probs`, `probs_model`: the expression model's softmax posterior, written by the build;
  `probs` is the network's softmax prior-corrected as the model card says, and (schema v6) the
  uncorrected `probs_raw` and `probs_labeller` (model id + calibration digest) sit beside it, so
  a new calibration of the same model re-derives `probs` and `label` with no network pass;
- `knn_label`, `knn_probs`, `knn_model`: the K=11 distance-weighted KNN vote over the model's
  reference bank plus the user-labelled faces (the vote shares are the confidence), written by
  the build and refreshed whenever a user label changes;
- `user_label`: what the user typed (`ferindex label`); it survives a model upgrade.
The label shown everywhere is the first present of user_label, knn_label, label.
`meta.labels_version` changes with every label write (a cache key for UIs: labels
change without touching vectors, so `generation` does not move).

Face quality and "not a face" (schema v3): each face stores how far it can be trusted
(`verify_score`: the face verifier's confidence, `sharpness`, `yaw`, and their combination
`quality` in [0, 1]; see faces/quality.py); analysis skips faces below a floor. A user can mark
a face as not a face (`set_not_a_face`): it leaves every vector read (`load_vectors`, hence
search and analysis), people and counts. The mark is also kept in `not_face_marks`, keyed by
the photo's content hash and the box, so a photo detected again (a rebuild after a deletion, a
retried error, a new detector) gets it back on its matching face (IoU >= 0.5).

The code follows the tables: schema.py (DDL and migrations), records.py (the records stored and
read), catalog_base.py (transactions, meta), and one class per table that Catalog combines:
catalog_photos.py (photos, faces, "not a face"), catalog_vectors.py, catalog_labels.py,
catalog_people.py and catalog_runs.py. This module opens a catalog: the connection, its errors,
identity and schema version.
"""
from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from pathlib import Path

from ferindex.errors import CatalogError
from ferindex.store.catalog_labels import CatalogLabels
from ferindex.store.catalog_people import CatalogPeople
from ferindex.store.catalog_photos import MARK_IOU, CatalogPhotos
from ferindex.store.catalog_runs import CatalogRuns
from ferindex.store.catalog_vectors import CatalogVectors
from ferindex.store.records import FaceRecord, PhotoRecord, PhotoRow, Predictions, box_iou
from ferindex.store.schema import CHIP_SIZE, MIGRATIONS, SCHEMA_VERSION, Migration

__all__ = ["CATALOG_ID_KEY", "CATALOG_NAME", "CHIP_SIZE", "MARK_IOU", "MIGRATIONS",
           "SCHEMA_VERSION", "Catalog", "FaceRecord", "Migration", "PhotoRecord", "PhotoRow",
           "Predictions", "box_iou", "catalog_error", "connect"]

CATALOG_NAME = "catalog.sqlite"
CATALOG_ID_KEY = "catalog_id"  # meta key of the catalog's random identity (see Catalog.catalog_id)


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (BEGIN/COMMIT are explicit, so batches are too).

    A reader of an index folder it cannot write (a read-only mount, another user's album)
    cannot create SQLite's `-shm` file: it opens the catalog read-only, which works while the
    `-shm` of a writer exists, else as immutable (no connection is open, so no one writes; a
    write-ahead log left by a killed build would be ignored that way, so that case is refused)."""
    if not read_only or os.access(path.parent, os.W_OK):
        return sqlite3.connect(path, isolation_level=None, timeout=30.0)
    uri = path.resolve().as_uri()
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=30.0)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.OperationalError:
        con.close()
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size:
            raise CatalogError(
                f"{path}: the index folder is read-only and holds a write-ahead log a build"
                " left behind: open it once where the folder can be written (any ferindex"
                " command does), then it reads anywhere") from None
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, timeout=30.0)


def catalog_error(path: Path, e: BaseException) -> CatalogError:
    """An SQLite (or OS) failure on the catalog at `path` as one message with the next step."""
    text = str(e)
    index = path.parent
    if "malformed" in text or "not a database" in text or type(e) is sqlite3.DatabaseError:
        return CatalogError(
            f"{path} is damaged ({text}): run `ferindex check --repair --index {index}` to copy"
            " what can still be read into a new catalog (your labels and people names included);"
            " the photos themselves are untouched")
    if "full" in text or getattr(e, "errno", None) == errno.ENOSPC:
        return CatalogError(
            f"disk full while writing {path} ({text}): everything committed before is kept;"
            " free some space and run the same command again")
    if "readonly" in text or "read-only" in text:
        return CatalogError(f"{path}: the index is read-only ({text}): run the command where"
                            " the index folder can be written")
    if "locked" in text:
        return CatalogError(f"{path} is busy ({text}): another process holds it; try again")
    return CatalogError(f"{path}: cannot use the catalog ({text})")


class Catalog(CatalogPhotos, CatalogVectors, CatalogLabels, CatalogPeople, CatalogRuns):
    """A connection to one index's catalog. Not thread-safe; open one per process/thread."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file() and not create:
            raise CatalogError(f"no catalog at {self.path}: build one with `ferindex build ALBUM`")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = connect(self.path, read_only=not create)
        except sqlite3.Error as e:
            raise catalog_error(self.path, e) from None
        self.con.row_factory = sqlite3.Row
        try:
            self.con.execute("PRAGMA busy_timeout = 30000")
            self.con.execute("PRAGMA foreign_keys = ON")
            if create:
                self.con.execute("PRAGMA journal_mode = WAL")
                self.con.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes
                self.migrate()
                self._ensure_catalog_id()
            else:
                self._check_version()
        except sqlite3.Error as e:  # not a database, damaged, disk full...
            self.con.close()
            raise catalog_error(self.path, e) from None
        except CatalogError:
            self.con.close()
            raise

    @classmethod
    def open(cls, index_dir: str | Path, *, create: bool = False) -> "Catalog":
        return cls(Path(index_dir) / CATALOG_NAME, create=create)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        """Close; an SQLite error raised inside the block becomes one CatalogError that names
        this catalog and the next step (damaged file, disk full...), never a traceback."""
        self.close()
        if isinstance(exc, sqlite3.Error):
            raise catalog_error(self.path, exc) from exc

    # -- identity ---------------------------------------------------------------------------
    @property
    def catalog_id(self) -> str | None:
        """A random id written when the catalog is created: vector caches record it, so a cache
        written for a deleted or recreated catalog (whose generations restart) is never used."""
        return self.get_meta(CATALOG_ID_KEY)

    def _ensure_catalog_id(self) -> None:
        if self.catalog_id is None:
            with self.transaction():
                self.set_meta(CATALOG_ID_KEY, uuid.uuid4().hex)

    # -- schema ---------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.con.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self) -> None:
        v = self.schema_version
        if v > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} has schema version {v}, newer than this ferindex ({SCHEMA_VERSION}):"
                " upgrade ferindex"
            )
        if v < SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path} has schema version {v} (current {SCHEMA_VERSION}):"
                " run `ferindex build` to upgrade it"
            )

    def migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION, one transaction per step (needs the write lock)."""
        v = self.schema_version
        if v > SCHEMA_VERSION:
            self._check_version()
        while v < SCHEMA_VERSION:
            if v not in MIGRATIONS:
                raise CatalogError(f"{self.path}: no migration from schema version {v}")
            with self.transaction():
                MIGRATIONS[v](self.con)
                v += 1
                self.con.execute(f"PRAGMA user_version = {v}")
                self.set_meta("schema_version", str(v))
