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
- `knn_label`, `knn_probs`, `knn_model`: the K=11 distance-weighted KNN vote over the model's
  reference bank plus the user-labelled faces (the vote shares are the confidence), written by
  the build and refreshed whenever a user label changes;
- `user_label`: what the user typed (`ferindex label`); it survives a model upgrade.
The label shown everywhere is the first present of user_label, knn_label, label.
`meta.labels_version` changes with every user or KNN label write (a cache key for UIs: labels
change without touching vectors, so `generation` does not move).

Face quality and "not a face" (schema v3): each face stores how far it can be trusted
(`verify_score`: the face verifier's confidence, `sharpness`, `yaw`, and their combination
`quality` in [0, 1]; see faces/quality.py); analysis skips faces below a floor. A user can mark
a face as not a face (`set_not_a_face`): it leaves every vector read (`load_vectors`, hence
search and analysis), people and counts. The mark is also kept in `not_face_marks`, keyed by
the photo's content hash and the box, so a photo detected again (a rebuild after a deletion, a
retried error, a new detector) gets it back on its matching face (IoU >= 0.5).
"""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferindex.errors import CatalogError

CATALOG_NAME = "catalog.sqlite"
CATALOG_ID_KEY = "catalog_id"  # meta key of the catalog's random identity (see Catalog.catalog_id)
SCHEMA_VERSION = 5
CHIP_SIZE = 48

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'noface')),
    error TEXT,
    width INTEGER,
    height INTEGER,
    taken_at TEXT,
    indexed_at REAL NOT NULL
);
CREATE INDEX photos_hash ON photos (hash);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE faces (
    id INTEGER PRIMARY KEY,
    photo_id INTEGER NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    face_idx INTEGER NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    det_score REAL,
    landmarks BLOB,
    chip BLOB NOT NULL,
    chip_landmarks BLOB,
    thumb BLOB,
    probs BLOB,
    label TEXT,
    probs_model TEXT,
    person_id INTEGER REFERENCES people (id) ON DELETE SET NULL,
    UNIQUE (photo_id, face_idx)
);
CREATE INDEX faces_photo ON faces (photo_id);
CREATE TABLE vectors (
    face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('expression', 'identity')),
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (face_id, kind, model_id)
);
CREATE INDEX vectors_model ON vectors (kind, model_id);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    model_id TEXT,
    stats TEXT
);
"""



def _run_script(con: sqlite3.Connection, script: str) -> None:
    """Statement by statement: `executescript` would COMMIT the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            con.execute(statement)


_V1_USER_LABELS_KEY = "user_labels"  # v1 kept user labels as JSON {face id: label} in meta


def _migrate_v1_to_v2(con: sqlite3.Connection) -> None:
    """User labels move from meta JSON to faces.user_label; KNN labels get their own columns."""
    for column in ("user_label TEXT", "knn_label TEXT", "knn_probs BLOB", "knn_model TEXT"):
        con.execute(f"ALTER TABLE faces ADD COLUMN {column}")
    con.execute("CREATE INDEX faces_person ON faces (person_id)")
    row = con.execute("SELECT value FROM meta WHERE key = ?", (_V1_USER_LABELS_KEY,)).fetchone()
    if row is None:
        return
    try:
        labels = json.loads(row[0])
    except ValueError:
        labels = None
    if not isinstance(labels, dict):
        raise CatalogError(f"meta {_V1_USER_LABELS_KEY!r} is not a JSON object: cannot move the"
                           " user labels to schema v2")
    # faces deleted since they were labelled simply match no row
    con.executemany("UPDATE faces SET user_label = ? WHERE id = ?",
                    [(str(v), int(k)) for k, v in labels.items() if str(k).isdigit() and v])
    con.execute("DELETE FROM meta WHERE key = ?", (_V1_USER_LABELS_KEY,))


_V3_SCRIPT = """
ALTER TABLE faces ADD COLUMN verify_score REAL;
ALTER TABLE faces ADD COLUMN sharpness REAL;
ALTER TABLE faces ADD COLUMN yaw REAL;
ALTER TABLE faces ADD COLUMN quality REAL;
ALTER TABLE faces ADD COLUMN not_a_face INTEGER NOT NULL DEFAULT 0;
CREATE TABLE not_face_marks (
    hash TEXT NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    PRIMARY KEY (hash, x0, y0, x1, y1)
)
"""


def _migrate_v2_to_v3(con: sqlite3.Connection) -> None:
    """Per-face quality columns (NULL for faces indexed before: they count as passing), the
    "not a face" flag and the marks that carry it across re-detection."""
    _run_script(con, _V3_SCRIPT)


def _migrate_v3_to_v4(con: sqlite3.Connection) -> None:
    """`faces.person_locked`: the user put this face in its person (`people --move`), so
    reclustering leaves it there."""
    con.execute("ALTER TABLE faces ADD COLUMN person_locked INTEGER NOT NULL DEFAULT 0")


def _migrate_v4_to_v5(con: sqlite3.Connection) -> None:
    """A partial index of the faces marked "not a face": vector reads filter them out without
    touching face rows, which hold the chip and thumbnail (overflow pages: at a million faces,
    reading one flag per face meant reading the whole 8 GB table)."""
    con.execute("CREATE INDEX faces_hidden ON faces (id) WHERE not_a_face = 1")


# MIGRATIONS[v] upgrades a catalog at schema version v to v + 1 (0 = empty file); each runs
# inside one transaction together with the user_version bump.
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, Migration] = {0: lambda con: _run_script(con, _SCHEMA_V1),
                                    1: _migrate_v1_to_v2, 2: _migrate_v2_to_v3,
                                    3: _migrate_v3_to_v4, 4: _migrate_v4_to_v5}
MARK_IOU = 0.5  # a re-detected box this close to a marked one is the same (non-)face


@dataclass
class PhotoRow:
    """What the incremental scan needs to know about a catalogued photo."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    error: str | None


@dataclass
class FaceRecord:
    """One detected face ready to be stored (ids are assigned by the catalog)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray  # (68, 2) float32
    chip: np.ndarray  # (48, 48) uint8, aligned
    chip_landmarks: np.ndarray | None = None  # the landmarks mapped into the chip
    thumb: bytes | None = None  # small JPEG of the box, for UIs
    vectors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (kind, model) -> vec
    probs: np.ndarray | None = None
    label: str | None = None
    probs_model: str | None = None
    verify_score: float | None = None  # the face verifier's confidence (faces/quality.py)
    sharpness: float | None = None
    yaw: float | None = None  # degrees, 0 = frontal
    quality: float | None = None  # [0, 1]; analysis skips faces below QUALITY_FLOOR


@dataclass
class PhotoRecord:
    """A processed photo: its stat, content hash, outcome and faces."""

    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str  # ok | error | noface
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    faces: list[FaceRecord] = field(default_factory=list)


def _blob(a: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def _floats(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, np.float32)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


_VISIBLE = "f.not_a_face = 0"  # faces a user has not marked as "not a face"
_HIDDEN = "SELECT id FROM faces WHERE not_a_face = 1"  # by the partial index faces_hidden


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


class Catalog:
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

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every SELECT inside sees the same committed state (WAL), so e.g.
        the generation and the vectors read for a cache belong together."""
        self.con.execute("BEGIN")
        try:
            yield self.con
        finally:
            if self.con.in_transaction:
                self.con.execute("COMMIT")

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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (KeyboardInterrupt too)."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def generation(self) -> int:
        """Counter of committed changes to faces/vectors; vector caches record the one they saw."""
        return int(self.get_meta("generation", "0") or 0)

    def bump_generation(self) -> int:
        g = self.generation + 1
        self.set_meta("generation", str(g))
        return g

    # -- photos ---------------------------------------------------------------------------
    def photo_index(self) -> dict[str, PhotoRow]:
        rows = self.con.execute(
            "SELECT id, path, size, mtime_ns, hash, status, error FROM photos"
        ).fetchall()
        return {r["path"]: PhotoRow(**dict(r)) for r in rows}

    def add_photo(self, rec: PhotoRecord) -> int:
        """Insert a processed photo (replacing any older row at that path) and its faces."""
        self.con.execute("DELETE FROM photos WHERE path = ?", (rec.path,))
        cur = self.con.execute(
            "INSERT INTO photos (path, size, mtime_ns, hash, status, error, width, height,"
            " taken_at, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.path, rec.size, rec.mtime_ns, rec.hash, rec.status, rec.error, rec.width,
             rec.height, rec.taken_at, time.time()),
        )
        photo_id = int(cur.lastrowid)
        marks = self._marks(rec.hash) if rec.faces else []
        for idx, face in enumerate(rec.faces):
            face_id = self._add_face(photo_id, idx, face)
            if any(box_iou(face.box, m) >= MARK_IOU for m in marks):
                self.con.execute("UPDATE faces SET not_a_face = 1 WHERE id = ?", (face_id,))
        return photo_id

    def _marks(self, digest: str | None) -> list[tuple[int, int, int, int]]:
        if digest is None:
            return []
        return [tuple(r) for r in self.con.execute(
            "SELECT x0, y0, x1, y1 FROM not_face_marks WHERE hash = ?", (digest,))]

    def _add_face(self, photo_id: int, idx: int, f: FaceRecord) -> int:
        cur = self.con.execute(
            "INSERT INTO faces (photo_id, face_idx, x0, y0, x1, y1, det_score, landmarks, chip,"
            " chip_landmarks, thumb, probs, label, probs_model, verify_score, sharpness, yaw,"
            " quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (photo_id, idx, *map(int, f.box), float(f.score), _blob(f.landmarks, "float32"),
             _blob(f.chip, "uint8"),
             None if f.chip_landmarks is None else _blob(f.chip_landmarks, "float32"), f.thumb,
             None if f.probs is None else _blob(f.probs, "float32"), f.label, f.probs_model,
             f.verify_score, f.sharpness, f.yaw, f.quality),
        )
        face_id = int(cur.lastrowid)
        for (kind, model_id), vec in f.vectors.items():
            self.put_vectors([face_id], kind, model_id, np.asarray(vec)[None])
        return face_id

    def update_stat(self, photo_id: int, path: str, size: int, mtime_ns: int) -> None:
        """Same content under a new stat and/or path (touched, or moved/renamed): keep faces."""
        self.con.execute(
            "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            (path, size, mtime_ns, photo_id),
        )

    def delete_photos(self, photo_ids: Iterable[int]) -> int:
        """Remove photos; their faces and vectors go with them (ON DELETE CASCADE)."""
        ids = [(int(i),) for i in photo_ids]
        self.con.executemany("DELETE FROM photos WHERE id = ?", ids)
        return len(ids)

    # -- faces and vectors ----------------------------------------------------------------
    def faces_without_vector(self, kind: str, model_id: str) -> list[int]:
        rows = self.con.execute(
            "SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE"
            " v.face_id = f.id AND v.kind = ? AND v.model_id = ?) ORDER BY f.id",
            (kind, model_id),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def chips(self, face_ids: Sequence[int]) -> np.ndarray:
        """Aligned chips (N, 48, 48) uint8 in the order of face_ids."""
        by_id = {
            int(r[0]): r[1]
            for r in self._select_in("SELECT id, chip FROM faces WHERE id IN ({})", face_ids)
        }
        out = np.empty((len(face_ids), CHIP_SIZE, CHIP_SIZE), np.uint8)
        for i, fid in enumerate(face_ids):
            out[i] = np.frombuffer(by_id[int(fid)], np.uint8).reshape(CHIP_SIZE, CHIP_SIZE)
        return out

    def chip_landmarks(self, face_ids: Sequence[int]) -> np.ndarray | None:
        """Landmarks in chip pixels (N, P, 2) in the order of face_ids; None if any is missing
        or the point counts differ (the model then locates landmarks on the chips itself)."""
        by_id = {
            int(r[0]): r[1] for r in
            self._select_in("SELECT id, chip_landmarks FROM faces WHERE id IN ({})", face_ids)
        }
        blobs = [by_id.get(int(f)) for f in face_ids]
        if not blobs or any(b is None for b in blobs) or len({len(b) for b in blobs}) != 1:
            return None
        return np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1, 2).copy()

    def set_predictions(
        self, face_ids: Sequence[int], probs: np.ndarray, labels: Sequence[str], model_id: str
    ) -> None:
        self.con.executemany(
            "UPDATE faces SET probs = ?, label = ?, probs_model = ? WHERE id = ?",
            [(_blob(p, "float32"), lab, model_id, int(f))
             for f, p, lab in zip(face_ids, probs, labels)],
        )

    def put_vectors(self, face_ids: Sequence[int], kind: str, model_id: str, X: np.ndarray) -> None:
        X = np.asarray(X, np.float32)
        self.con.executemany(
            "INSERT OR REPLACE INTO vectors (face_id, kind, model_id, dim, vec)"
            " VALUES (?, ?, ?, ?, ?)",
            [(int(f), kind, model_id, int(X.shape[1]), _blob(x, "float32"))
             for f, x in zip(face_ids, X)],
        )

    def load_vectors(self, kind: str, model_id: str, face_ids: Sequence[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of one kind and model: (face ids int64 (N,), float32 (N, d)) by face id;
        all of them, or those of `face_ids` that have one. Faces marked "not a face" have none:
        this is what hides them from search and analysis."""
        sql = ("SELECT v.face_id, v.dim, v.vec FROM vectors v WHERE v.kind = ?"
               f" AND v.model_id = ? AND v.face_id NOT IN ({_HIDDEN})")
        if face_ids is None:
            rows = self.con.execute(sql + " ORDER BY v.face_id", (kind, model_id)).fetchall()
        else:
            rows = sorted(self._select_in(sql + " AND v.face_id IN ({})", face_ids,
                                          prefix=(kind, model_id)), key=lambda r: r[0])
        if not rows:
            return np.empty(0, np.int64), np.empty((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        X = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), rows[0][1])
        return ids, X.copy()

    def vector_face_ids(self, kind: str, model_id: str) -> np.ndarray:
        """Ids (int64, ascending) of the faces `load_vectors` returns, without reading vectors:
        the primary key's index covers the query."""
        return self._column(
            "SELECT face_id FROM vectors INDEXED BY sqlite_autoindex_vectors_1 WHERE kind = ?"
            f" AND model_id = ? AND face_id NOT IN ({_HIDDEN}) ORDER BY face_id",
            (kind, model_id))

    def faces_indexed_after(self, t: float) -> np.ndarray:
        """Ids (int64, ascending) of the faces whose photo was indexed after time `t`."""
        return np.sort(self._column(
            "SELECT f.id FROM photos p JOIN faces f INDEXED BY faces_photo"
            " ON f.photo_id = p.id WHERE p.indexed_at > ?", (float(t),)))

    def _column(self, sql: str, params: tuple) -> np.ndarray:
        """A one-column integer query as an int64 array, without Row objects."""
        cur = self.con.cursor()
        cur.row_factory = None
        rows = cur.execute(sql, params).fetchall()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def vector_models(self, kind: str) -> list[str]:
        """Model ids that have vectors of `kind` (e.g. the identity descriptor's)."""
        return [r[0] for r in self.con.execute(
            "SELECT DISTINCT model_id FROM vectors WHERE kind = ? ORDER BY model_id", (kind,))]

    def face_details(self, face_ids: Sequence[int]) -> dict[int, dict]:
        """Photo path, box, labels and person of faces, keyed by face id.

        `label`/`probs`: the model's softmax posterior; `knn_label`/`knn_probs`: the KNN vote;
        `user_label`: the user's own label (see the module docstring)."""
        rows = self._select_in(
            "SELECT f.id, f.photo_id, f.face_idx, f.x0, f.y0, f.x1, f.y1, f.det_score, f.label,"
            " f.probs, f.knn_label, f.knn_probs, f.user_label, f.person_id, p.path,"
            " f.verify_score, f.sharpness, f.yaw, f.quality, f.not_a_face"
            " FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.id IN ({})",
            face_ids,
        )
        out = {}
        for r in rows:
            out[int(r["id"])] = {
                "face_id": int(r["id"]), "photo_id": int(r["photo_id"]),
                "face_index": int(r["face_idx"]), "path": r["path"],
                "box": [r["x0"], r["y0"], r["x1"], r["y1"]], "det_score": r["det_score"],
                "label": r["label"], "probs": _floats(r["probs"]),
                "knn_label": r["knn_label"], "knn_probs": _floats(r["knn_probs"]),
                "user_label": r["user_label"], "person_id": r["person_id"],
                "verify_score": r["verify_score"], "sharpness": r["sharpness"], "yaw": r["yaw"],
                "quality": r["quality"], "not_a_face": bool(r["not_a_face"]),
            }
        return out

    def thumbnails(self, face_ids: Sequence[int]) -> dict[int, bytes | None]:
        """The small JPEG of each face the build stored (None where it stored none)."""
        return {int(r[0]): r[1]
                for r in self._select_in("SELECT id, thumb FROM faces WHERE id IN ({})", face_ids)}

    def photo_faces(self, min_quality: float = 0.0) -> list[sqlite3.Row]:
        """Every face with its photo, photo by photo, left to right: rows of (photo_id, path,
        taken_at, landmarks, probs, person_id) for per-photo analyses (best shots); faces marked
        "not a face" and those below `min_quality` (NULL quality passes) are left out."""
        return self.con.execute(
            "SELECT p.id AS photo_id, p.path, p.taken_at, f.landmarks, f.probs, f.person_id"
            f" FROM faces f JOIN photos p ON p.id = f.photo_id WHERE {_VISIBLE}"
            " AND (f.quality IS NULL OR f.quality >= ?) ORDER BY p.id, f.face_idx",
            (float(min_quality),)).fetchall()

    def face_quality(self, face_ids: Sequence[int]) -> dict[int, float | None]:
        """{face id: quality} (None for faces indexed before qualities were stored)."""
        return {int(r[0]): r[1] for r in self._select_in(
            "SELECT id, quality FROM faces WHERE id IN ({})", face_ids)}

    # -- "not a face" -----------------------------------------------------------------------
    def set_not_a_face(self, face_ids: Sequence[int], flag: bool = True) -> None:
        """Mark faces as not a face (or, with flag=False, as a face again).

        A marked face is hidden everywhere: it has no vectors for readers (`load_vectors`),
        no person, no count. The mark is also stored by photo content hash and box, so it
        survives the photo being detected again. Bumps the generation (vector caches drop the
        face) and the labels version (UIs refresh). Call inside `transaction()`; raises
        CatalogError naming the first unknown face id.
        """
        ids = [int(f) for f in face_ids]
        rows = {int(r[0]): r for r in self._select_in(
            "SELECT f.id, p.hash, f.x0, f.y0, f.x1, f.y1 FROM faces f"
            " JOIN photos p ON p.id = f.photo_id WHERE f.id IN ({})", ids)}
        missing = [f for f in ids if f not in rows]
        if missing:
            raise CatalogError(f"no face with id {missing[0]} in index {self.path.parent}")
        for fid in ids:
            _, digest, *box = rows[fid]
            self.con.execute("UPDATE faces SET not_a_face = ? WHERE id = ?", (int(flag), fid))
            if flag:
                self.con.execute("UPDATE faces SET person_id = NULL WHERE id = ?", (fid,))
            if digest is None:
                continue
            stale = [m for m in self._marks(digest) if box_iou(box, m) >= MARK_IOU]
            self.con.executemany("DELETE FROM not_face_marks WHERE hash = ? AND x0 = ? AND"
                                 " y0 = ? AND x1 = ? AND y1 = ?", [(digest, *m) for m in stale])
            if flag:
                self.con.execute("INSERT INTO not_face_marks (hash, x0, y0, x1, y1)"
                                 " VALUES (?, ?, ?, ?, ?)", (digest, *box))
        self.bump_generation()
        self._bump_labels_version()

    def not_faces(self) -> list[int]:
        """Ids of the faces marked "not a face", ascending."""
        return [int(r[0]) for r in self.con.execute(
            "SELECT id FROM faces WHERE not_a_face = 1 ORDER BY id")]

    def face_count_at(self, paths: Sequence[str]) -> int:
        """Number of faces on the photos catalogued at these paths (those a new record replaces)."""
        total = 0
        for s in range(0, len(paths), 900):
            part = list(paths[s:s + 900])
            total += int(self.con.execute(
                "SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                f" WHERE p.path IN ({','.join('?' * len(part))})", part).fetchone()[0])
        return total

    def face_count(self, photo_ids: Sequence[int]) -> int:
        """Number of faces on these photos."""
        return sum(int(r[0]) for r in self._select_in(
            "SELECT COUNT(*) FROM faces WHERE photo_id IN ({})", photo_ids))

    # -- labels (user and KNN; the model's posterior is set_predictions) ---------------------
    @property
    def labels_version(self) -> int:
        return int(self.get_meta("labels_version", "0") or 0)

    def _bump_labels_version(self) -> None:
        self.set_meta("labels_version", str(self.labels_version + 1))

    def user_labels(self) -> dict[int, str]:
        """{face id: label} of every face the user labelled."""
        return {int(r[0]): r[1] for r in self.con.execute(
            "SELECT id, user_label FROM faces WHERE user_label IS NOT NULL ORDER BY id")}

    def set_user_label(self, face_id: int, label: str | None) -> None:
        """Record (or with None, forget) the user's label of one face."""
        cur = self.con.execute("UPDATE faces SET user_label = ? WHERE id = ?",
                               (label, int(face_id)))
        if cur.rowcount == 0:
            raise CatalogError(f"no face with id {face_id} in index {self.path.parent}")
        self._bump_labels_version()

    def set_knn_labels(self, face_ids: Sequence[int], probs: np.ndarray, labels: Sequence[str],
                       model_id: str) -> None:
        """Store KNN votes (vote shares per class) and their argmax label, computed with the
        vectors and reference bank of `model_id`."""
        self.con.executemany(
            "UPDATE faces SET knn_probs = ?, knn_label = ?, knn_model = ? WHERE id = ?",
            [(_blob(p, "float32"), lab, model_id, int(f))
             for f, p, lab in zip(face_ids, probs, labels)],
        )
        self._bump_labels_version()

    def faces_without_knn(self, model_id: str) -> list[int]:
        """Faces with an expression vector of `model_id` but no KNN label computed with it."""
        return [int(r[0]) for r in self.con.execute(
            "SELECT f.id FROM faces f JOIN vectors v ON v.face_id = f.id AND v.kind = 'expression'"
            " AND v.model_id = ? WHERE f.knn_model IS NOT ? ORDER BY f.id", (model_id, model_id))]

    def label_counts(self) -> dict[str, int]:
        """Faces per shown label (user label, else KNN label, else the model's)."""
        return dict(self.con.execute(
            "SELECT COALESCE(user_label, knn_label, label, 'unknown') AS l, COUNT(*) FROM faces f"
            f" WHERE {_VISIBLE} GROUP BY l ORDER BY COUNT(*) DESC, l").fetchall())

    # -- people ---------------------------------------------------------------------------
    def people(self) -> list[dict]:
        """[{id, name, count, sample_face}] of people with faces, largest first; the sample is
        the lowest face id."""
        rows = self.con.execute(
            "SELECT p.id, p.name, COUNT(f.id), MIN(f.id) FROM people p JOIN faces f"
            f" ON f.person_id = p.id AND {_VISIBLE} GROUP BY p.id"
            " ORDER BY COUNT(f.id) DESC, p.id").fetchall()
        return [{"id": int(r[0]), "name": r[1], "count": int(r[2]), "sample_face": int(r[3])}
                for r in rows]

    def find_person(self, person: str) -> int | None:
        """A person's id from a name (first) or a numeric id; None if there is none."""
        row = self.con.execute("SELECT id FROM people WHERE name = ?", (person,)).fetchone()
        if row is None and person.strip().isdigit():
            row = self.con.execute("SELECT id FROM people WHERE id = ?",
                                   (int(person),)).fetchone()
        return None if row is None else int(row[0])

    def add_person(self, name: str | None = None) -> int:
        return int(self.con.execute("INSERT INTO people (name) VALUES (?)", (name,)).lastrowid)

    def rename_person(self, person_id: int, name: str | None) -> None:
        self.con.execute("UPDATE people SET name = ? WHERE id = ?", (name, int(person_id)))

    def merge_people(self, keep: int, other: int) -> None:
        """Move every face of `other` to `keep` and delete `other`."""
        if int(keep) == int(other):
            return
        self.con.execute("UPDATE faces SET person_id = ? WHERE person_id = ?",
                         (int(keep), int(other)))
        self.con.execute("DELETE FROM people WHERE id = ?", (int(other),))

    def set_person(self, face_ids: Sequence[int], person_id: int | None, *,
                   only_unassigned: bool = False) -> None:
        """Assign faces to a person (None: to nobody); `only_unassigned` leaves faces that
        already have a person alone."""
        sql = "UPDATE faces SET person_id = ? WHERE id = ?"
        if only_unassigned:
            sql += " AND person_id IS NULL"
        self.con.executemany(sql, [(person_id, int(f)) for f in face_ids])

    def named_person_faces(self) -> dict[int, int]:
        """{face id: person id} of faces that belong to a named person."""
        return dict(self.con.execute(
            "SELECT f.id, f.person_id FROM faces f JOIN people p ON p.id = f.person_id"
            " WHERE p.name IS NOT NULL").fetchall())

    def delete_unnamed_people(self) -> None:
        """Forget every unnamed person (their faces become unassigned), except faces the user
        placed (`lock_person`) and the people that hold them."""
        self.con.execute("UPDATE faces SET person_id = NULL WHERE person_locked = 0 AND"
                         " person_id IN (SELECT id FROM people WHERE name IS NULL)")
        self.con.execute("DELETE FROM people WHERE name IS NULL AND id NOT IN"
                         " (SELECT person_id FROM faces WHERE person_locked = 1"
                         " AND person_id IS NOT NULL)")

    def lock_person(self, face_ids: Sequence[int], person_id: int) -> None:
        """Put faces in a person for good: reclustering leaves them there."""
        self.con.executemany("UPDATE faces SET person_id = ?, person_locked = 1 WHERE id = ?",
                             [(int(person_id), int(f)) for f in face_ids])

    def locked_faces(self) -> list[int]:
        """Faces the user placed in their person (`lock_person`), ascending."""
        return [int(r[0]) for r in self.con.execute(
            "SELECT id FROM faces WHERE person_locked = 1 ORDER BY id")]

    def faces_of_person(self, person_id: int) -> list[int]:
        return [int(r[0]) for r in self.con.execute(
            f"SELECT id FROM faces f WHERE person_id = ? AND {_VISIBLE} ORDER BY id",
            (int(person_id),))]

    def _select_in(self, sql: str, ids: Sequence[int], chunk: int = 900,
                   prefix: tuple = ()) -> list[sqlite3.Row]:
        """SELECT ... WHERE x IN (ids) in chunks below SQLite's host-parameter limit; `prefix`
        holds the values of placeholders that come before the IN list."""
        rows: list[sqlite3.Row] = []
        ids = [int(i) for i in ids]
        for s in range(0, len(ids), chunk):
            part = ids[s:s + chunk]
            rows += self.con.execute(sql.format(",".join("?" * len(part))),
                                     (*prefix, *part)).fetchall()
        return rows

    # -- runs and counts ------------------------------------------------------------------
    def start_run(self, model_id: str) -> int:
        cur = self.con.execute(
            "INSERT INTO runs (started, model_id) VALUES (?, ?)", (time.time(), model_id)
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, stats: dict) -> None:
        self.con.execute(
            "UPDATE runs SET finished = ?, stats = ? WHERE id = ?",
            (time.time(), json.dumps(stats), run_id),
        )

    def last_run(self, *, finished: bool = False) -> dict | None:
        """The latest build (`finished`: the latest that recorded its outcome), or None."""
        where = " WHERE finished IS NOT NULL" if finished else ""
        r = self.con.execute(
            f"SELECT id, started, finished, model_id, stats FROM runs{where}"
            " ORDER BY id DESC LIMIT 1").fetchone()
        if r is None:
            return None
        return {"id": r["id"], "started": r["started"], "finished": r["finished"],
                "model_id": r["model_id"], "stats": json.loads(r["stats"]) if r["stats"] else None}

    def counts(self) -> dict[str, int]:
        q = self.con.execute
        by_status = dict(q("SELECT status, COUNT(*) FROM photos GROUP BY status").fetchall())
        return {
            "photos": sum(by_status.values()),
            "ok": by_status.get("ok", 0),
            "errors": by_status.get("error", 0),
            "noface": by_status.get("noface", 0),
            "faces": q(f"SELECT COUNT(*) FROM faces f WHERE {_VISIBLE}").fetchone()[0],
        }

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every photo that failed to decode or process."""
        return [(r[0], r[1]) for r in self.con.execute(
            "SELECT path, error FROM photos WHERE status = 'error' ORDER BY path")]
