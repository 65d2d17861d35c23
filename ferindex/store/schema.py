"""The catalog's on-disk layout: the DDL of each schema version and the migrations between them.

Split out of store/catalog.py so the tables' definition and history read in one place, apart
from the code that queries them. `SCHEMA_VERSION` is `PRAGMA user_version` of a current
catalog; `MIGRATIONS[v]` upgrades a file at version v to v + 1 (Catalog.migrate runs them).
A schema change is a new DDL step here plus the queries in the catalog_*.py module of its table.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from ferindex.errors import CatalogError

SCHEMA_VERSION = 6  # PRAGMA user_version of a catalog this code writes
CHIP_SIZE = 48  # faces.chip holds CHIP_SIZE x CHIP_SIZE uint8 (an aligned gray face)

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


_V6_SCRIPT = """
ALTER TABLE faces ADD COLUMN probs_raw BLOB;
ALTER TABLE faces ADD COLUMN probs_labeller TEXT;
CREATE INDEX faces_softmax ON faces (probs_model, probs_labeller) WHERE probs_raw IS NOT NULL
"""


def _migrate_v5_to_v6(con: sqlite3.Connection) -> None:
    """`faces.probs_raw`: the network's softmax before the model card's prior correction, and
    `faces.probs_labeller`: the model and calibration that turned it into `probs` and `label`
    (analysis/album.py `labeller_id`), so that a release shipping the same weights with a new
    calibration re-derives them without a network pass. Faces stored before have neither (NULL)
    and keep their softmax until they are embedded again. The partial index finds the faces to
    re-derive without reading face rows (see v5)."""
    _run_script(con, _V6_SCRIPT)


# MIGRATIONS[v] upgrades a catalog at schema version v to v + 1 (0 = empty file); each runs
# inside one transaction together with the user_version bump.
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, Migration] = {0: lambda con: _run_script(con, _SCHEMA_V1),
                                    1: _migrate_v1_to_v2, 2: _migrate_v2_to_v3,
                                    3: _migrate_v3_to_v4, 4: _migrate_v4_to_v5,
                                    5: _migrate_v5_to_v6}

# SQL fragments over the "not a face" flag (schema v3), shared by the queries of every table
VISIBLE = "f.not_a_face = 0"  # faces a user has not marked as "not a face"
HIDDEN = "SELECT id FROM faces WHERE not_a_face = 1"  # by the partial index faces_hidden
