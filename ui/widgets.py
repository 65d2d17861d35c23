"""Pieces several pages draw: face galleries (with each face's actions), result downloads,
people names, and the bridge from an uploaded file to the pipeline functions that take a
path."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ferindex.errors import FerindexError
from ui import state
from ui.actions import card_buttons


class UploadProblem(Exception):
    """An upload the pipeline cannot use; the message names the uploaded file, not a temp path."""

    def __init__(self, message: str, no_face: bool = False) -> None:
        super().__init__(message)
        self.no_face = no_face


@contextmanager
def saved_upload(name: str, data: bytes) -> Iterator[Path]:
    """The upload written to a private temp file under its own name (the decoders sniff the
    content, and their messages then read naturally); removed afterwards."""
    from ferindex.pipeline.query import NoFaceError

    with tempfile.TemporaryDirectory(prefix="ferindex-ui-") as tmp:
        path = Path(tmp) / (Path(name).name or "upload")
        path.write_bytes(data)
        try:
            yield path
        except FerindexError as e:
            raise UploadProblem(str(e).replace(str(path), name),
                                no_face=isinstance(e, NoFaceError)) from e


def show_problem(e: UploadProblem) -> None:
    (st.warning if e.no_face else st.error)(str(e))


def face_crop(rgb: np.ndarray, box: Sequence[int]) -> bytes:
    """The same square JPEG around a face that the build stores as an album face's thumbnail."""
    from ferindex.pipeline.process import face_thumbnail

    return face_thumbnail(rgb, tuple(int(v) for v in box))


@dataclass
class Card:
    """One face in a gallery: its picture, a caption, and optionally its photo and a note."""

    face_id: int
    image: np.ndarray | bytes
    caption: str
    photo: np.ndarray | None = None
    note: str | None = None


def face_cards(index: state.Index, faces, rows: Sequence[int], caption=None) -> list[Card]:
    """Cards for rows of an AlbumFaces; caption(row) -> str, default "face <id> · <label>"."""
    rows = [int(r) for r in rows]
    images = state.thumbs(index, faces.ids[rows])
    cap = caption or (lambda r: f"face {faces.ids[r]} · {faces.labels[r]}")
    return [Card(int(faces.ids[r]), img, cap(r)) for r, img in zip(rows, images)]


def gallery(cards: Sequence[Card], cols: int = 6, actions: str | None = None) -> None:
    """Faces in rows of `cols`, each with its caption, then its photo and note if given; with
    `actions` (a key unique on the page) album faces get their "Similar" and "Open" buttons."""
    for start in range(0, len(cards), cols):
        for col, card in zip(st.columns(cols), cards[start:start + cols]):
            with col:
                st.image(card.image, caption=card.caption, width="stretch")
                if card.photo is not None:
                    st.image(card.photo, width="stretch")
                if card.note:
                    st.caption(card.note)
                if actions is not None and card.face_id >= 0:
                    card_buttons(card.face_id, actions)


def face_rows(index: state.Index, faces, rows: Sequence[int], extra=None) -> list[dict]:
    """Result rows for downloads, as `ferindex export` writes them: face id, absolute photo
    path, box, shown label, its source and confidence, person; `extra(row) -> dict` adds
    page-specific columns (similarity, group...)."""
    names = people_names(index)
    out = []
    for r in (int(r) for r in rows):
        conf = faces.confidence[r] if len(faces.confidence) else np.nan
        person = int(faces.person_ids[r])
        out.append({"face_id": int(faces.ids[r]), "path": str(index.album / faces.paths[r]),
                    "box": [int(v) for v in faces.boxes[r]], "label": str(faces.labels[r]),
                    "label_source": str(faces.label_source[r]) if len(faces.label_source) else None,
                    "confidence": None if np.isnan(conf) else round(float(conf), 4),
                    "person_id": None if person < 0 else person,
                    "person": names.get(person) if person >= 0 else None,
                    **(extra(r) if extra else {})})
    return out


def downloads(index: state.Index, rows: list[dict], key: str, name: str) -> None:
    """CSV, JSON and a ZIP of face crops of a result list; files are made on click."""
    from ferindex.export import tables
    from ferindex.export.crops import crops_zip

    if not rows:
        return

    def crops() -> bytes:
        with state.catalog(index) as cat:
            return crops_zip(rows, cat.thumbnails([r["face_id"] for r in rows]))

    row = st.container(horizontal=True, gap="small")
    row.download_button("CSV", lambda: tables.to_csv(rows), f"{name}.csv", "text/csv",
                       key=f"csv_{key}", icon=":material/download:", on_click="ignore")
    row.download_button("JSON", lambda: tables.to_json(rows), f"{name}.json",
                       "application/json", key=f"json_{key}", icon=":material/download:",
                       on_click="ignore")
    row.download_button("Face crops (ZIP)", crops, f"{name}_faces.zip", "application/zip",
                       key=f"zip_{key}", icon=":material/download:", on_click="ignore")


def rows_of(faces, face_ids: Sequence[int]) -> np.ndarray:
    """Row positions in an AlbumFaces (ids are sorted: the catalog returns them by id)."""
    return np.searchsorted(faces.ids, np.asarray(face_ids, dtype=np.int64))


def people_names(index: state.Index) -> dict[int, str]:
    """{person id: display name} of every person with faces, largest first."""
    from ferindex.analysis.people import list_people

    with state.catalog(index) as cat:
        return {p["id"]: person_name(p) for p in list_people(cat)}


def person_name(p: Mapping) -> str:
    return p["name"] or f"person {p['id']}"


def person_groups(index: state.Index, faces) -> np.ndarray:
    """Each face's person name ("no person" for faces outside every cluster)."""
    names = people_names(index)
    return np.array([names.get(int(p), "no person") for p in faces.person_ids])
