"""`ferindex check [--repair]`: verify an index and say what a repair would do (or do it).

What is checked, cheapest first:
- the catalog file: `PRAGMA integrity_check` and `foreign_key_check`; a damaged catalog is
  repaired by copying every row that can still be read into a new catalog (user labels and
  people names live in those rows), which gets a new catalog id so no old cache is trusted;
  the damaged file is kept beside it, and the next `ferindex build` detects what was lost;
- the catalog's content: its id, every aligned chip's size, every vector's size;
- the vector caches: sidecar, catalog id, generation, model, data file size and checksum,
  count, dimension and face ids against the catalog; leftover files of other generations and
  temporary files of killed processes.
A repair takes the write lock (it is a writer, like a build); checking alone only reads.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ferindex.errors import CatalogError
from ferindex.pipeline.process import IDENTITY_MODEL
from ferindex.store.catalog import CATALOG_NAME, CHIP_SIZE, SCHEMA_VERSION, Catalog, connect
from ferindex.store.lock import WriteLock
from ferindex.store.vectors import (VectorIndex, data_files, file_checksum, read_sidecar,
                                    remove_stale_tmp, stale_reason, stale_tmp_files)

REBUILD = "rebuild it from the catalog"
SALVAGE = ("copy every readable row into a new catalog (the damaged file is kept as"
           " catalog.sqlite.damaged-TIME)")


@dataclass
class Finding:
    """One problem: what is affected, what is wrong, and what `--repair` does about it."""

    what: str
    problem: str
    repair: str


def check_index(index_dir: str | Path, *, repair: bool = False) -> dict:
    """{"index", "ok", "problems": [Finding as dict], "repaired": [str]}: the problems found,
    what the repair did, and whether the index is sound now (after the repair, if asked)."""
    index_dir = Path(index_dir)
    if not (index_dir / CATALOG_NAME).is_file():
        raise CatalogError(f"no index at {index_dir}: build one first with `ferindex build ALBUM`")
    problems = _problems(index_dir)
    repaired = _repair(index_dir, problems) if repair and problems else []
    remaining = _problems(index_dir) if repaired else problems
    return {"index": str(index_dir), "ok": not remaining,
            "problems": [asdict(p) for p in problems], "repaired": repaired}


def _problems(index_dir: Path) -> list[Finding]:
    damage = _integrity(index_dir / CATALOG_NAME)
    if damage:
        found = [Finding("catalog", damage, SALVAGE)]
    else:
        with Catalog.open(index_dir) as cat:
            found = _content(cat) + _caches(cat, index_dir)
    return found + [Finding(p.name, "temporary file left by a killed process", "delete it")
                    for p in stale_tmp_files(index_dir)]


def _integrity(path: Path) -> str | None:
    """None when SQLite finds the file sound, else the first few of its complaints."""
    try:
        con = connect(path, read_only=True)  # also where the index folder is read-only
    except sqlite3.Error as e:
        return str(e)
    try:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        orphans = con.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as e:
        return str(e)
    finally:
        con.close()
    if rows != ["ok"]:
        return "; ".join(rows[:5])
    return f"{len(orphans)} rows point to deleted rows" if orphans else None


def _content(cat: Catalog) -> list[Finding]:
    out = []
    if cat.catalog_id is None:
        out.append(Finding("catalog", "no catalog id (written before ids existed)",
                           "write one; the caches are then rebuilt"))
    bad_chips = cat.con.execute(  # photos already marked for detection (no hash) are handled
        "SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
        " WHERE length(f.chip) != ? AND p.hash IS NOT NULL", (CHIP_SIZE * CHIP_SIZE,)).fetchone()[0]
    if bad_chips:
        out.append(Finding("chips", f"{bad_chips} faces have an aligned chip of the wrong size",
                           "mark their photos changed so the next build detects them again"))
    bad_vectors = cat.con.execute("SELECT COUNT(*) FROM vectors WHERE length(vec) != 4 * dim"
                                  ).fetchone()[0]
    if bad_vectors:
        out.append(Finding("vectors", f"{bad_vectors} vectors are not of their recorded size",
                           "delete them; the next build embeds the faces again from their chips"))
    return out


def _cache_kinds(cat: Catalog) -> list[tuple[str, str, str]]:
    """(kind, model id, metric) of every cache this catalog should have."""
    kinds = []
    model_id = cat.get_meta("model_id")
    if model_id and len(cat.vector_face_ids("expression", model_id)):
        kinds.append(("expression", model_id, cat.get_meta("metric") or "euclidean"))
    if IDENTITY_MODEL in cat.vector_models("identity"):
        kinds.append(("identity", IDENTITY_MODEL, "euclidean"))
    return kinds


def _caches(cat: Catalog, index_dir: Path) -> list[Finding]:
    out = []
    for kind, model_id, metric in _cache_kinds(cat):
        problem = _cache_problem(cat, index_dir, kind, model_id, metric)
        if problem:
            out.append(Finding(f"{kind} cache", problem, REBUILD))
    for kind in ("expression", "identity"):
        side = read_sidecar(index_dir, kind)
        for f in data_files(index_dir, kind):
            if side is None or f.name != side.file:
                out.append(Finding(f.name, "cache file no sidecar names", "delete it"))
    return out


def _cache_problem(cat: Catalog, index_dir: Path, kind: str, model_id: str,
                   metric: str) -> str | None:
    side = read_sidecar(index_dir, kind)
    if side is None:
        return "missing (queries rebuild it in memory each time)"
    reason = stale_reason(side, cat, model_id=model_id, metric=metric)
    if reason:
        return reason
    data = index_dir / side.file
    if not data.is_file() or data.stat().st_size != side.bytes:
        return f"data file {side.file} is missing or not of its recorded size"
    if file_checksum(data) != side.blake2b:
        return f"data file {side.file} does not match its checksum"
    loaded = VectorIndex.load(index_dir, kind)
    if loaded is None:
        return f"data file {side.file} cannot be read as the index its sidecar describes"
    from faiss import vector_to_array

    ids = np.sort(vector_to_array(loaded[0].index.id_map))
    if not np.array_equal(ids, cat.vector_face_ids(kind, model_id)):
        return "holds other faces than the catalog"
    return None


def _repair(index_dir: Path, problems: list[Finding]) -> list[str]:
    """Do what each finding's `repair` says, under the write lock."""
    done = []
    with WriteLock(index_dir):
        if any(p.repair == SALVAGE for p in problems):
            done.append(salvage(index_dir))
        done += [f"deleted {n}" for n in remove_stale_tmp(index_dir)]
        with Catalog.open(index_dir, create=True) as cat:  # writes a missing catalog id
            done += _repair_content(cat)
            for kind, model_id, metric in _cache_kinds(cat):
                if _cache_problem(cat, index_dir, kind, model_id, metric):
                    ids, X = cat.load_vectors(kind, model_id)
                    VectorIndex.from_vectors(ids, X, kind=kind, model_id=model_id, metric=metric
                                             ).save(index_dir, cat.generation, cat.catalog_id)
                    done.append(f"rebuilt the {kind} cache")
        for kind in ("expression", "identity"):
            side = read_sidecar(index_dir, kind)
            for f in data_files(index_dir, kind):
                if side is None or f.name != side.file:
                    f.unlink()
                    done.append(f"deleted {f.name}")
    return done


def _redetect(con: sqlite3.Connection, where: str, params: tuple = ()) -> int:
    """Make the next build detect these photos again: a changed stat sends a photo to the
    hash, and a forgotten hash makes it "changed" rather than "touched"."""
    return con.execute(f"UPDATE photos SET mtime_ns = -1, hash = NULL WHERE {where}",
                       params).rowcount


def _repair_content(cat: Catalog) -> list[str]:
    done = []
    with cat.transaction():
        n = _redetect(cat.con, "id IN (SELECT photo_id FROM faces WHERE length(chip) != ?)",
                      (CHIP_SIZE * CHIP_SIZE,))
        if n:
            done.append(f"marked {n} photos with damaged chips for detection by the next build")
        n = cat.con.execute("DELETE FROM vectors WHERE length(vec) != 4 * dim").rowcount
        if n:
            cat.bump_generation()
            done.append(f"deleted {n} damaged vectors (the next build embeds them again)")
    return done


# -- salvage of a damaged catalog ---------------------------------------------------------------
PARENTS_FIRST = ("meta", "people", "photos", "faces", "vectors")  # foreign keys point leftwards
CHUNK = 256


def salvage(index_dir: Path) -> str:
    """Copy every readable row of the damaged catalog into a new one and put it in its place
    (the damaged file, with its WAL, is kept as `catalog.sqlite.damaged-TIME`). Rows on
    unreadable pages, and rows whose parent was lost (a face without its photo), are dropped;
    the next build detects the photos again. Returns a one-line account."""
    path = index_dir / CATALOG_NAME
    fresh = index_dir / "catalog.salvage.sqlite"
    for p in (fresh, *_wal_files(fresh)):
        p.unlink(missing_ok=True)
    src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    kept: dict[str, int] = {}
    lost: list[str] = []
    try:
        with Catalog(fresh, create=True) as new:
            new_id = new.catalog_id
            tables = [r[0] for r in new.con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            order = [t for t in PARENTS_FIRST if t in tables] + sorted(
                set(tables) - set(PARENTS_FIRST))
            with new.transaction():
                new.con.execute("DELETE FROM meta")
                for table in order:
                    kept[table], complete = _copy_table(src, new.con, table)
                    if not complete:
                        lost.append(table)
                new.set_meta("catalog_id", new_id)  # a new catalog: no old cache is trusted
                new.set_meta("schema_version", str(SCHEMA_VERSION))
                # photos that lost every face are detected again by the next build
                _redetect(new.con, "status = 'ok' AND id NOT IN (SELECT photo_id FROM faces)")
    finally:
        src.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for p in (path, *_wal_files(path)):  # the old WAL must never meet the new file
        if p.exists():
            os.replace(p, p.with_name(f"{p.name}.damaged-{stamp}"))
    os.replace(fresh, path)
    return ("salvaged the catalog: kept " + ", ".join(f"{n} {t}" for t, n in kept.items())
            + (f" (rows of {', '.join(lost)} on unreadable pages were lost)" if lost else "")
            + f"; the damaged file is {CATALOG_NAME}.damaged-{stamp}; run `ferindex build` to"
            " detect the photos whose rows were lost")


def _wal_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str
                ) -> tuple[int, bool]:
    """Copy the readable rows of `table` (the columns both catalogs have); returns how many,
    and whether every row could be read and kept.

    Rows are read in rowid ranges; a range that hits a damaged page is read again one rowid at
    a time (point lookups descend the tree afresh and step over the damaged page)."""
    try:
        src_cols = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
        top = src.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return 0, False
    cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})") if r[1] in src_cols]
    if not cols or top is None:
        return 0, bool(cols)
    names = ", ".join(cols)
    insert = f"INSERT INTO {table} (rowid, {names}) VALUES ({', '.join('?' * (len(cols) + 1))})"
    copied, complete, last = 0, True, -(2 ** 63)
    while last < top:
        try:
            rows = src.execute(f"SELECT rowid, {names} FROM {table} WHERE rowid > ?"
                               " ORDER BY rowid LIMIT ?", (last, CHUNK)).fetchall()
            if not rows:
                break
            last = rows[-1][0]
        except sqlite3.DatabaseError:
            complete = False
            start = max(last, 0)
            rows = [r for rowid in range(start + 1, start + CHUNK + 1)
                    if (r := _row(src, table, names, rowid)) is not None]
            last = start + CHUNK
        for row in rows:
            try:
                dst.execute(insert, tuple(row))
                copied += 1
            except sqlite3.IntegrityError:  # its parent row was lost
                complete = False
    return copied, complete


def _row(src: sqlite3.Connection, table: str, names: str, rowid: int) -> tuple | None:
    try:
        return src.execute(f"SELECT rowid, {names} FROM {table} WHERE rowid = ?",
                           (rowid,)).fetchone()
    except sqlite3.DatabaseError:
        return None
