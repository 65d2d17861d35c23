"""`ferindex info`: what an index holds, read without the write lock (safe during a build)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ferindex.store.catalog import Catalog
from ferindex.store.vectors import fresh_sidecar


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(
        timespec="seconds")


def index_info(index_dir: str | Path) -> dict:
    """Counts, model, size on disk, cache freshness and the last build (see README, JSON)."""
    index_dir = Path(index_dir)
    with Catalog.open(index_dir) as cat:
        counts = cat.counts()
        model_id = cat.get_meta("model_id")
        vectors = {
            kind: n for kind, n in cat.con.execute(
                "SELECT kind, COUNT(*) FROM vectors WHERE model_id = ? OR kind = 'identity'"
                " GROUP BY kind", (model_id or "",))
        }
        generation = cat.generation
        run = cat.last_run()
        seen = cat.last_run(finished=True)  # what the last complete scan could not look at
        seen_stats = (seen or {}).get("stats") or {}
        fresh = bool(model_id) and fresh_sidecar(
            cat, index_dir, "expression", model_id=model_id,
            metric=cat.get_meta("metric") or "euclidean") is not None
        info = {
            "index": str(index_dir),
            "album": cat.get_meta("album"),
            "photos": counts["photos"],
            "faces": counts["faces"],
            "errors": counts["errors"],
            "noface": counts["noface"],
            "model": model_id,
            "metric": cat.get_meta("metric"),
            "detector": cat.get_meta("detector"),
            "vectors": {"expression": vectors.get("expression", 0),
                        "identity": vectors.get("identity", 0)},
            "size_bytes": sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file()),
            "schema_version": cat.schema_version,
            "generation": generation,
            "caches_fresh": fresh,
            "error_files": [{"path": p, "reason": r} for p, r in cat.errors()],
            "scan_problems": seen_stats.get("scan_problems", []),
            "unavailable": seen_stats.get("unavailable", []),
            # faces per shown label: the user's, else the KNN vote, else the model's
            "labels": cat.label_counts(),
            "user_labels": len(cat.user_labels()),
            "last_build": None,
        }
    if run is not None:
        stats = run["stats"] or {}
        info["last_build"] = {
            "started": _iso(run["started"]), "finished": _iso(run["finished"]),
            "model": run["model_id"], "seconds": stats.get("seconds"),
            # finished = null: the build is still running, or was killed
            "interrupted": bool(stats.get("interrupted")),
            "error": stats.get("failed"),  # what stopped it (disk full...), else null
            "stats": {k: v for k, v in stats.items()
                      if k not in ("errors", "known_errors", "scan_problems", "unavailable")},
        }
    return info

