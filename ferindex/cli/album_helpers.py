"""What the album analysis commands share: running a command on the album's faces, a face as
JSON, and the index model's expression classes.

Split out of the analysis command modules (expression_cmds.py, people_cmds.py,
map_export_cmds.py) so each helper is defined once for all of them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ferindex.cli.options import open_catalog
from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.analysis.album import AlbumFaces
    from ferindex.store.catalog import Catalog

T = TypeVar("T")


def on_album_faces(index: Path | None, album: Path | None,
                   fn: Callable[[Path, "Catalog", "AlbumFaces"], T], min_quality: float = 0.0
                   ) -> T:
    """Open the index's catalog, load its faces (those of at least `min_quality`), and run
    fn(index folder, catalog, faces) while the catalog is open: the common start of every
    command that analyses the whole album."""
    from ferindex.analysis.album import load_faces

    where, cat = open_catalog(index, album)
    with cat:
        return fn(where, cat, load_faces(cat, min_quality=min_quality))


def face_doc(faces, i: int, root: Path) -> dict:
    """A face in JSON: `label` is the shown one (user, else KNN, else model), `label_source`
    says which, `confidence` is its vote share (KNN), probability (model) or 1 (user)."""
    conf = faces.confidence[i] if len(faces.confidence) else np.nan
    return {"face_id": int(faces.ids[i]), "path": str(root / faces.paths[i]),
            "box": faces.boxes[i].tolist(), "label": str(faces.labels[i]),
            "label_source": str(faces.label_source[i]) if len(faces.label_source) else None,
            "confidence": None if np.isnan(conf) else round(float(conf), 4)}


def face_person(faces, i: int) -> int | None:
    """The person id of face `i`, None where it has no person."""
    return None if faces.person_ids[i] < 0 else int(faces.person_ids[i])


def model_classes(cat) -> list[str]:
    """The expression classes of the index's model."""
    from ferindex.embed import load_model

    return list(load_model(cat.get_meta("model_ref") or None).classes)


def match_class(name: str, classes: list[str]) -> str:
    """'happy' -> 'happiness': exact name, else the one class sharing the first 4 letters."""
    name = name.lower()
    if name in classes:
        return name
    hits = [c for c in classes if c.startswith(name[:4]) or name.startswith(c[:4])]
    if len(hits) != 1:
        raise FerindexError(f"unknown expression {name!r}: choose one of {', '.join(classes)}")
    return hits[0]
