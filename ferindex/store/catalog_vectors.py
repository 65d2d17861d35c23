"""The `vectors` table: expression and identity embeddings per face and model.

One of the per-table parts of Catalog (store/catalog.py). Faces marked "not a face" have no
vectors for readers: every read here filters them out by the partial index `faces_hidden`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferindex.store.catalog_base import CatalogBase
from ferindex.store.records import as_blob
from ferindex.store.schema import HIDDEN


class CatalogVectors(CatalogBase):
    """Writes and reads of face vectors."""

    def faces_without_vector(self, kind: str, model_id: str) -> list[int]:
        rows = self.con.execute(
            "SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE"
            " v.face_id = f.id AND v.kind = ? AND v.model_id = ?) ORDER BY f.id",
            (kind, model_id),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def put_vectors(self, face_ids: Sequence[int], kind: str, model_id: str, X: np.ndarray) -> None:
        X = np.asarray(X, np.float32)
        self.con.executemany(
            "INSERT OR REPLACE INTO vectors (face_id, kind, model_id, dim, vec)"
            " VALUES (?, ?, ?, ?, ?)",
            [(int(f), kind, model_id, int(X.shape[1]), as_blob(x, "float32"))
             for f, x in zip(face_ids, X)],
        )

    def load_vectors(self, kind: str, model_id: str, face_ids: Sequence[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of one kind and model: (face ids int64 (N,), float32 (N, d)) by face id;
        all of them, or those of `face_ids` that have one. Faces marked "not a face" have none:
        this is what hides them from search and analysis."""
        sql = ("SELECT v.face_id, v.dim, v.vec FROM vectors v WHERE v.kind = ?"
               f" AND v.model_id = ? AND v.face_id NOT IN ({HIDDEN})")
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
            f" AND model_id = ? AND face_id NOT IN ({HIDDEN}) ORDER BY face_id",
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
