"""The `photos` and `faces` tables (with `not_face_marks`): what the scan records per photo, the
faces detected on it, what the pipeline and the UIs read back per face, and "not a face".

One of the per-table parts of Catalog (store/catalog.py). Adding a photo stores its faces'
vectors too, hence CatalogPhotos extends CatalogVectors.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence

import numpy as np

from ferindex.errors import CatalogError
from ferindex.store.catalog_vectors import CatalogVectors
from ferindex.store.records import (
    FaceRecord,
    PhotoRecord,
    PhotoRow,
    as_blob,
    as_floats,
    box_iou,
    float_blob,
)
from ferindex.store.schema import CHIP_SIZE, VISIBLE

MARK_IOU = 0.5  # a re-detected box this close to a marked one is the same (non-)face


class CatalogPhotos(CatalogVectors):
    """Photos and their faces: writes by the build, per-face reads, "not a face" marks."""

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
            " chip_landmarks, thumb, probs, label, probs_model, probs_raw, probs_labeller,"
            " verify_score, sharpness, yaw, quality)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (photo_id, idx, *map(int, f.box), float(f.score), as_blob(f.landmarks, "float32"),
             as_blob(f.chip, "uint8"), float_blob(f.chip_landmarks), f.thumb,
             float_blob(f.probs), f.label, f.probs_model, float_blob(f.probs_raw),
             f.probs_labeller, f.verify_score, f.sharpness, f.yaw, f.quality),
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

    # -- faces -----------------------------------------------------------------------------
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

    def face_details(self, face_ids: Sequence[int]) -> dict[int, dict]:
        """Photo path, box, labels and person of faces, keyed by face id.

        `label`/`probs`: the model's softmax posterior; `knn_label`/`knn_probs`: the KNN vote;
        `user_label`: the user's own label (see store/catalog.py)."""
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
                "label": r["label"], "probs": as_floats(r["probs"]),
                "knn_label": r["knn_label"], "knn_probs": as_floats(r["knn_probs"]),
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
            f" FROM faces f JOIN photos p ON p.id = f.photo_id WHERE {VISIBLE}"
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
