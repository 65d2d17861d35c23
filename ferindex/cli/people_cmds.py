"""Commands about who is in the album and what the user says about faces: people, find ("this
person, smiling"), label and notface.

One of the analysis command modules that cli/analysis_cmds.py registers (cli/output.py rules).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer

from ferindex.cli import output
from ferindex.cli.album_helpers import (
    face_doc,
    face_person,
    match_class,
    model_classes,
    on_album_faces,
)
from ferindex.cli.options import (
    AlbumOpt,
    IndexOpt,
    JsonOpt,
    PersonOpt,
    guarded,
    open_catalog,
)
from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.analysis.album import AlbumFaces
    from ferindex.store.catalog import Catalog


# -- people --------------------------------------------------------------------------------

def people(
    index: IndexOpt = None, album: AlbumOpt = None,
    recluster: Annotated[bool, typer.Option(
        "--recluster", help="Cluster again (named people keep their faces).")] = False,
    min_cluster_size: Annotated[int, typer.Option(min=2, help="Fewest faces of one person.")] = 3,
    name: Annotated[Optional[tuple[str, str]], typer.Option(
        help="Name a person: --name PERSON NEW_NAME (PERSON = id or current name).")] = None,
    merge: Annotated[Optional[tuple[str, str]], typer.Option(
        help="Merge two people: --merge KEEP OTHER.")] = None,
    move: Annotated[Optional[tuple[int, str]], typer.Option(
        help="Move a face out of its person: --move FACE_ID PERSON (id or name) or"
             " --move FACE_ID new; it stays there when people are clustered again.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """People in the album (HDBSCAN on identity descriptors; faces of one photo are never one
    person; faces below the quality floor are left out): counts and a sample face."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import album_root

    def body() -> list[dict]:
        _, cat = open_catalog(index, album)
        with cat:
            if name:
                ppl.name_person(cat, *name)
            if merge:
                ppl.merge_people(cat, *merge)
            if move:
                ppl.move_face(cat, move[0], None if move[1].lower() == "new" else move[1])
            if recluster or not ppl.list_people(cat):
                ppl.cluster_people(cat, min_cluster_size)
            root, rows = album_root(cat), ppl.list_people(cat)
            details = cat.face_details([r["sample_face"] for r in rows])
            return [{**r, "sample": {"path": str(root / details[r["sample_face"]]["path"]),
                                     "box": details[r["sample_face"]]["box"]}} for r in rows]

    output.emit_rows(guarded(as_json, body), as_json,
                     lambda r: f"person {r['id']:<4} {r['name'] or '(unnamed)':<20} {r['count']:>5} faces"
                               f"  e.g. {r['sample']['path']} {tuple(r['sample']['box'])}",
                     "no person with enough faces found")


def find(
    index: IndexOpt = None, album: AlbumOpt = None,
    person: PersonOpt = None,
    expression: Annotated[Optional[str], typer.Option(
        help="Expression class, e.g. happiness (a prefix such as 'happy' works).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of faces.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Faces of a person and/or an expression ("this person, smiling"), best first: by the KNN
    vote share for the expression (your own label counts as 1), then the model's probability of
    it, then face quality; without --expression by face quality."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import album_root

    def body(_: Path, cat: "Catalog", faces: "AlbumFaces") -> list[dict]:
        keep = np.ones(len(faces), dtype=bool)
        if person is not None:
            keep &= faces.person_ids == ppl.resolve_person(cat, person)
        quality = _quality(cat, faces.ids)
        score = model_p = np.zeros(len(faces))
        if expression is not None:
            classes = model_classes(cat)
            cls = match_class(expression, classes)
            keep &= faces.labels == cls
            score = np.where(faces.label_source == "user", 1.0,
                             _class_share(faces.knn_probs, classes, cls))
            model_p = _class_share(faces.probs, classes, cls)
        order = [i for i in np.lexsort((-quality, -model_p, -score)) if keep[i]][:k]
        root = album_root(cat)
        return [{**face_doc(faces, i, root), "score": round(float(score[i]), 4),
                 "model_prob": round(float(model_p[i]), 4), "quality": round(float(quality[i]), 4),
                 "person_id": face_person(faces, i)}
                for i in order]

    def run() -> list[dict]:
        if person is None and expression is None:
            raise FerindexError("give --person and/or --expression")
        return on_album_faces(index, album, body)

    output.emit_rows(guarded(as_json, run), as_json,
                     lambda h: f"vote {h['score']:.2f} model {h['model_prob']:.3f} quality"
                               f" {h['quality']:.2f}  {h['label']:<10} ({h['label_source']:<5}) face"
                               f" {h['face_id']:<6} person {h['person_id'] if h['person_id'] is not None else '-':<4}"
                               f" {h['path']} {tuple(h['box'])}",
                     "no matching face")


def _class_share(probs: list, classes: list[str], cls: str) -> np.ndarray:
    """Each face's share (KNN vote or softmax) of class `cls`; 0 where none is stored."""
    c = classes.index(cls)
    return np.array([float(p[c]) if p is not None and len(p) == len(classes) else 0.0
                     for p in probs])


def _quality(cat: "Catalog", face_ids: np.ndarray) -> np.ndarray:
    """Face quality per face: the catalog's `quality` where the schema has one and it is
    stored, else the detector's confidence score (higher is better; 0 where unknown)."""
    cols = {r[1] for r in cat.con.execute("PRAGMA table_info(faces)")}
    col = "COALESCE(quality, det_score)" if "quality" in cols else "det_score"
    stored = dict(cat.con.execute(f"SELECT id, {col} FROM faces").fetchall())
    return np.array([float(stored.get(int(f)) or 0.0) for f in face_ids])


# -- labels --------------------------------------------------------------------------------

def label(
    face_id: Annotated[int, typer.Argument(help="Face id (shown by query/find/summarize).")],
    new_label: Annotated[str, typer.Argument(metavar="LABEL", help="Expression class, or 'none'"
                                             " to forget your label.")],
    index: IndexOpt = None, album: AlbumOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label one face yourself. Your label is what find/summarize/subclasses/query show for
    that face, and it joins the KNN votes (reference bank + your labels), so the stored KNN
    labels of the whole album are recomputed."""
    from ferindex.analysis.album import label_faces, set_user_label
    from ferindex.pipeline.query import load_index_model

    def body() -> dict:
        where, cat = open_catalog(index, album)
        with cat:
            model = load_index_model(cat.get_meta("model_ref") or None,
                                cat.get_meta("model_id") or "", where)
            value = None
            if new_label.lower() != "none":
                value = match_class(new_label, list(model.classes))
            set_user_label(cat, face_id, value)
            n = label_faces(cat, model)
            return {"face_id": face_id, "label": value, "knn_relabelled": n}

    doc = guarded(as_json, body)
    if as_json:
        output.emit_json(doc)
        return
    output.stdout.print(f"face {doc['face_id']}: {doc['label'] or 'user label removed'}"
                        f" (KNN labels of {doc['knn_relabelled']} faces updated)")


def notface(
    face_ids: Annotated[list[int], typer.Argument(metavar="FACE_ID...", help="Face ids (shown by"
                                                  " query/find/summarize).")],
    undo: Annotated[bool, typer.Option("--undo", help="It is a face after all.")] = False,
    index: IndexOpt = None, album: AlbumOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark faces as "not a face" (a patch, a logo, a pet): they disappear from search,
    analysis, people and counts, and stay marked when the album is built again."""
    def body() -> dict:
        _, cat = open_catalog(index, album)
        with cat:
            user_labelled = set(cat.user_labels()) & set(face_ids)
            with cat.transaction():
                cat.set_not_a_face(face_ids, not undo)
            if user_labelled:  # a user-labelled face left (or rejoined) the KNN votes
                from ferindex.analysis.album import label_faces
                from ferindex.pipeline.query import load_index_model

                label_faces(cat, load_index_model(cat.get_meta("model_ref") or None,
                                                  cat.get_meta("model_id") or "", cat.path.parent))
            return {"face_ids": face_ids, "not_a_face": not undo, "hidden": cat.not_faces()}

    doc = guarded(as_json, body)
    if as_json:
        output.emit_json(doc)
        return
    what = "marked as not a face" if doc["not_a_face"] else "a face again"
    output.stdout.print(f"face {', '.join(map(str, doc['face_ids']))}: {what}"
                        f" ({len(doc['hidden'])} hidden in this index)")
