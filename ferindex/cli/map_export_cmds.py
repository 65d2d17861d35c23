"""Commands that write the album's faces out: map (a 2-D projection and its PNG scatter) and
export (CSV, JSON, a ZIP of crops, XMP sidecars).

One of the analysis command modules that cli/analysis_cmds.py registers (cli/output.py rules).
"""
from __future__ import annotations

import json
from enum import Enum
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
from ferindex.cli.options import AlbumOpt, IndexOpt, JsonOpt, OutOpt, PersonOpt, guarded
from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.analysis.album import AlbumFaces
    from ferindex.store.catalog import Catalog


class Method(str, Enum):
    tsne = "tsne"
    umap = "umap"


class ColorBy(str, Enum):
    label = "label"
    subclass = "subclass"
    person = "person"


# -- map -----------------------------------------------------------------------------------

def map_cmd(
    index: IndexOpt = None, album: AlbumOpt = None,
    method: Annotated[Method, typer.Option(help="2-D projection.")] = Method.tsne,
    color: Annotated[ColorBy, typer.Option(help="Colour points by.")] = ColorBy.label,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """2-D map of the album's expression embeddings (cached) and a PNG scatter."""
    from ferindex.analysis.album import album_root
    from ferindex.analysis.projection import Projection, cache_key

    def body(where: Path, cat: "Catalog", faces: "AlbumFaces") -> dict:
        proj = Projection(method.value, metric=cat.get_meta("metric", "euclidean") or "euclidean",
                          on_status=lambda m: output.stderr.print(m))
        key = cache_key(cat.get_meta("model_id") or "", faces.ids.tolist(), method.value,
                        **proj.params())
        cached = cat.get_meta(key)
        if cached:
            xy = np.asarray(json.loads(cached), dtype=np.float32)
        else:
            xy = proj.fit_transform(faces.X)
            with cat.transaction():
                cat.set_meta(key, json.dumps(np.round(xy, 4).tolist()))
        groups = _colour_groups(faces, color)
        path = out or where / "sheets" / f"map_{method.value}_{color.value}.png"
        _scatter(xy, groups, path, f"{method.value} map coloured by {color.value}")
        root = album_root(cat)
        return {"method": method.value, "cached": bool(cached), "png": str(path),
                "points": [{**face_doc(faces, i, root), "x": float(xy[i, 0]),
                            "y": float(xy[i, 1]), "group": str(groups[i])}
                           for i in range(len(faces))]}

    doc = guarded(as_json, lambda: on_album_faces(index, album, body))
    if as_json:
        output.emit_json(doc)
        return
    output.stdout.print(f"{len(doc['points'])} faces mapped with {doc['method']}"
                        f"{' (cached)' if doc['cached'] else ''}: {doc['png']}")


def _colour_groups(faces, color: ColorBy) -> np.ndarray:
    if color is ColorBy.person:
        return np.where(faces.person_ids >= 0, faces.person_ids.astype(str), "none")
    if color is ColorBy.subclass:
        from ferindex.analysis.subclasses import SubclassDiscovery

        return SubclassDiscovery(max_level=1).fit(faces.X, faces.labels).labels_.astype(str)
    return faces.labels


def _scatter(xy: np.ndarray, groups: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ferindex.analysis.palette import colours

    fig, ax = plt.subplots(figsize=(7, 6))
    groups = groups.astype(str)
    palette = colours(groups)  # the UI's Explore scatter uses the same colours
    names = list(palette)
    for g in names:
        sel = groups == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=palette[g], label=f"{g} ({sel.sum()})")
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- export --------------------------------------------------------------------------------

def export(
    index: IndexOpt = None, album: AlbumOpt = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the faces as CSV here.")] = None,
    json_file: Annotated[Optional[Path], typer.Option(
        "--json-file", help="Write the faces as a JSON array here.")] = None,
    crops: Annotated[Optional[Path], typer.Option(
        "--crops", help="Write a ZIP of face crops (cut from the originals) here.")] = None,
    xmp: Annotated[bool, typer.Option(
        "--xmp", help="Write XMP sidecars (PHOTO.jpg.xmp) with expression keywords and MWG face"
                      " regions; merged with what a sidecar already holds.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Put the sidecars under this folder (album layout) instead of beside the"
                      " photos.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be written; write nothing.")] = False,
    person: PersonOpt = None,
    expression: Annotated[Optional[str], typer.Option(
        help="Only faces with this expression in the CSV/JSON/ZIP.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export faces (CSV, JSON, a ZIP of crops) and XMP sidecars that photo managers read
    (digiKam, darktable, Lightroom, Immich). Photos themselves are never written to."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import album_root
    from ferindex.config import INDEX_DIRNAME
    from ferindex.export import sidecars, tables
    from ferindex.export.crops import crops_zip

    def body(where: Path, cat: "Catalog", faces: "AlbumFaces") -> dict:
        if not (csv or json_file or crops or xmp):
            raise FerindexError("nothing to export: give --csv, --json-file, --crops and/or --xmp")
        keep = np.ones(len(faces), dtype=bool)
        if person is not None:
            keep &= faces.person_ids == ppl.resolve_person(cat, person)
        if expression is not None:
            keep &= faces.labels == match_class(expression, model_classes(cat))
        # an index inside its album goes where the album goes: sidecars beside the photos
        # that are there now, not at the path the album had when it was built
        root = where.parent if where.name == INDEX_DIRNAME else album_root(cat)
        names = {p["id"]: p["name"] for p in ppl.list_people(cat)}
        rows = [{**face_doc(faces, i, root), "person_id": face_person(faces, i),
                 "person": names.get(face_person(faces, i))} for i in np.flatnonzero(keep)]
        files = {f: text for f, text in ((csv, tables.to_csv), (json_file, tables.to_json)) if f}
        plans = sidecars.plan(cat, root, out) if xmp else []
        if not dry_run:
            for path, to_text in files.items():
                path.write_text(to_text(rows), encoding="utf-8")
            if crops:
                crops.write_bytes(crops_zip(rows, cat.thumbnails([r["face_id"] for r in rows])))
        written = 0 if dry_run else sidecars.write(plans)
        return {"dry_run": dry_run, "faces": len(rows),
                "files": [str(f) for f in [*files, *([crops] if crops else [])]],
                "sidecars": [p.doc() for p in plans], "sidecars_written": written}

    doc = guarded(as_json, lambda: on_album_faces(index, album, body))
    if as_json:
        output.emit_json(doc)
        return
    verb = "would write" if doc["dry_run"] else "wrote"
    for f in doc["files"]:
        output.stdout.print(f"{verb} {f} ({doc['faces']} faces)")
    counts: dict[str, int] = {}
    for sc in doc["sidecars"]:
        counts[sc["status"]] = counts.get(sc["status"], 0) + 1
        if doc["dry_run"] or sc["status"] == "skipped":
            output.stdout.print(f"{sc['status']:<9} {sc['sidecar']}  {', '.join(sc['keywords'])}"
                                f"  ({sc['regions']} face regions){'  ' + sc['reason'] if sc['reason'] else ''}")
    if doc["sidecars"]:
        output.stdout.print(f"XMP sidecars: {verb} {doc['sidecars_written'] if not doc['dry_run'] else counts.get('new', 0) + counts.get('update', 0)}"
                            f" ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})")
