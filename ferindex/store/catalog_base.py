"""What the queries of every table share: the connection and its transactions, the `meta` table
with its two change counters, and chunked `WHERE x IN (...)` reads.

Catalog (store/catalog.py) is assembled from one class per table (catalog_photos.py,
catalog_vectors.py, catalog_labels.py, catalog_people.py, catalog_runs.py), each extending
CatalogBase; keeping these helpers here lets each table's module stay about that table.
Catalog.__init__ sets `path` and opens `con`.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class CatalogBase:
    """The connection to one catalog and the helpers every table's queries use."""

    path: Path
    con: sqlite3.Connection

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

    @property
    def labels_version(self) -> int:
        """Counter of label writes (and "not a face" marks): a cache key for UIs,
        since labels change without touching vectors, so `generation` does not move."""
        return int(self.get_meta("labels_version", "0") or 0)

    def _bump_labels_version(self) -> None:
        self.set_meta("labels_version", str(self.labels_version + 1))

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
