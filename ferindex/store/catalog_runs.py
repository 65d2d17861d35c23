"""The `runs` table (one row per build: start, end, model, stats) and the index's counts.

One of the per-table parts of Catalog (store/catalog.py); `info` and the build report read them.
"""
from __future__ import annotations

import json
import time

from ferindex.store.catalog_base import CatalogBase
from ferindex.store.schema import VISIBLE


class CatalogRuns(CatalogBase):
    """Builds recorded in the catalog, photo and face counts, failed photos."""

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
            "faces": q(f"SELECT COUNT(*) FROM faces f WHERE {VISIBLE}").fetchone()[0],
        }

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every photo that failed to decode or process."""
        return [(r[0], r[1]) for r in self.con.execute(
            "SELECT path, error FROM photos WHERE status = 'error' ORDER BY path")]
