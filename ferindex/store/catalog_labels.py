"""Each face's three labels (columns of `faces`, see store/catalog.py): the model's softmax
posterior, the KNN vote and the user's label.

One of the per-table parts of Catalog (store/catalog.py). Every label write (the model's, the
KNN's, the user's) bumps `labels_version` (catalog_base.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store.catalog_base import CatalogBase
from ferindex.store.records import Predictions, as_blob
from ferindex.store.schema import VISIBLE


class CatalogLabels(CatalogBase):
    """Writes and reads of the model's, the KNN's and the user's labels."""

    def set_predictions(self, face_ids: Sequence[int], pred: Predictions) -> None:
        """Store the model's softmax of faces (row i of `pred` is face_ids[i]); bumps the labels
        version, since a recalibration changes shown labels without touching vectors."""
        self.con.executemany(
            "UPDATE faces SET probs_raw = ?, probs = ?, label = ?, probs_model = ?,"
            " probs_labeller = ? WHERE id = ?",
            [(as_blob(r, "float32"), as_blob(p, "float32"), lab, pred.model_id, pred.labeller,
              int(f)) for f, r, p, lab in zip(face_ids, pred.raw, pred.probs, pred.labels)],
        )
        self._bump_labels_version()

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
                       labeller: str) -> None:
        """Store KNN votes (vote shares per class) and their argmax label, computed by
        `labeller` (the model id, with its calibration: analysis/album.py `labeller_id`)."""
        self.con.executemany(
            "UPDATE faces SET knn_probs = ?, knn_label = ?, knn_model = ? WHERE id = ?",
            [(as_blob(p, "float32"), lab, labeller, int(f))
             for f, p, lab in zip(face_ids, probs, labels)],
        )
        self._bump_labels_version()

    def faces_without_knn(self, model_id: str, labeller: str | None = None) -> list[int]:
        """Faces with an expression vector of `model_id` but no KNN label computed by
        `labeller` (default: `model_id`)."""
        return [int(r[0]) for r in self.con.execute(
            "SELECT f.id FROM faces f JOIN vectors v ON v.face_id = f.id AND v.kind = 'expression'"
            " AND v.model_id = ? WHERE f.knn_model IS NOT ? ORDER BY f.id", (model_id, labeller or model_id))]

    def faces_with_stale_softmax(self, model_id: str, labeller: str, n_classes: int) -> list[int]:
        """Faces whose softmax `model_id` stored under another calibration than `labeller`'s and
        whose raw softmax (`n_classes` wide) is there to re-derive it from. Faces stored before
        schema v6 have none, so they are never listed: their softmax stays as it was."""
        return [int(r[0]) for r in self.con.execute(
            "SELECT id FROM faces WHERE probs_model = ? AND probs_raw IS NOT NULL"
            " AND probs_labeller IS NOT ? AND length(probs_raw) = ? ORDER BY id",
            (model_id, labeller, 4 * n_classes))]

    def stored_posteriors(self, face_ids: Sequence[int], model_id: str, n_classes: int,
                          raw: bool = False) -> np.ndarray:
        """(n, n_classes) float32: the stored softmax posterior of each face (as `set_predictions`
        wrote it; with `raw`, the network's softmax before the card's correction) where
        `model_id` wrote it, NaN rows elsewhere (and where the raw softmax predates schema v6)."""
        column = "probs_raw" if raw else "probs"
        rows = dict(self._select_in(
            f"SELECT id, {column} FROM faces WHERE probs_model = ? AND id IN ({{}})", face_ids,
            prefix=(model_id,)))
        out = np.full((len(face_ids), n_classes), np.nan, np.float32)
        for i, f in enumerate(face_ids):
            blob = rows.get(int(f))
            if blob is not None and len(blob) == 4 * n_classes:
                out[i] = np.frombuffer(blob, np.float32)
        return out

    def label_counts(self) -> dict[str, int]:
        """Faces per shown label (user label, else KNN label, else the model's)."""
        return dict(self.con.execute(
            "SELECT COALESCE(user_label, knn_label, label, 'unknown') AS l, COUNT(*) FROM faces f"
            f" WHERE {VISIBLE} GROUP BY l ORDER BY COUNT(*) DESC, l").fetchall())
