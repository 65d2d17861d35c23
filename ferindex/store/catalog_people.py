"""The `people` table and each face's person (`faces.person_id`, `faces.person_locked`).

One of the per-table parts of Catalog (store/catalog.py); the clustering that fills it lives in
analysis/people.py.
"""
from __future__ import annotations

from collections.abc import Sequence

from ferindex.store.catalog_base import CatalogBase
from ferindex.store.schema import VISIBLE


class CatalogPeople(CatalogBase):
    """People, their names, and which faces belong to whom."""

    def people(self) -> list[dict]:
        """[{id, name, count, sample_face}] of people with faces, largest first; the sample is
        the lowest face id."""
        rows = self.con.execute(
            "SELECT p.id, p.name, COUNT(f.id), MIN(f.id) FROM people p JOIN faces f"
            f" ON f.person_id = p.id AND {VISIBLE} GROUP BY p.id"
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
            f"SELECT id FROM faces f WHERE person_id = ? AND {VISIBLE} ORDER BY id",
            (int(person_id),))]
