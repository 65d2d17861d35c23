"""Commands about the album's expressions: classify (photos, no index), subclasses, summarize
and bestshot.

One of the analysis command modules that cli/analysis_cmds.py registers; each command is thin:
read arrays from the index (analysis/album.py), run one analysis component, print a table or
one JSON document (cli/output.py rules).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer

from ferindex.analysis.album import USER_WEIGHT
from ferindex.cli import output
from ferindex.cli.album_helpers import face_doc, model_classes, on_album_faces
from ferindex.cli.options import (
    AlbumOpt,
    IndexOpt,
    JsonOpt,
    OutOpt,
    guarded,
    open_catalog,
)
from ferindex.errors import FerindexError
from ferindex.faces.quality import QUALITY_FLOOR

if TYPE_CHECKING:
    from ferindex.analysis.album import AlbumFaces
    from ferindex.store.catalog import Catalog


# -- classify ------------------------------------------------------------------------------

def classify(
    paths: Annotated[list[Path], typer.Argument(help="Photos and/or folders (walked recursively).")],
    model: Annotated[Optional[str], typer.Option(help="Expression model (default: shipped).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="KNN neighbours (SGM: 11).")] = 11,
    detector: Annotated[str, typer.Option(help="Face detector: hog, cnn or insightface.")] = "hog",
    upsample: Annotated[int, typer.Option(min=0, max=4, help="Detector upsampling.")] = 1,
    index: Annotated[Optional[Path], typer.Option(
        "--index", help="Also vote with the faces you labelled in this index (`ferindex label`).")
    ] = None,
    user_weight: Annotated[float, typer.Option(help="Votes per user-labelled face.")] = USER_WEIGHT,
    as_json: JsonOpt = False,
) -> None:
    """Expression of every face in the given photos: no index needed (KNN over the model's
    labelled reference bank)."""
    from ferindex.analysis.classify import classify_paths, make_knn
    from ferindex.embed import load_model
    from ferindex.faces.detect import make_detector

    def body() -> list[dict]:
        m = load_model(model)
        user = _user_bank(index, m) if index is not None else None
        knn = make_knn(m, k=k, user=user, user_weight=user_weight)
        det = make_detector(detector, upsample=upsample)
        return list(classify_paths(paths, m, det, knn))

    results = guarded(as_json, body)
    if as_json:
        output.emit_json(results)
        return
    for r in results:
        if "error" in r:
            output.stderr.print(f"[red]{r['error']}[/]")
        elif not r["faces"]:
            output.stdout.print(f"{r['path']}: no face")
        for i, f in enumerate(r.get("faces", [])):
            output.stdout.print(f"{r['path']} face {i} {tuple(f['box'])}: [bold]{f['label']}[/]"
                                f" ({f['probs'][f['label']]:.2f}; model: {f['model_label']})")


def _user_bank(index: Path, model) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of the faces the user labelled in an index built with `model`."""
    from ferindex.analysis.album import user_bank
    from ferindex.store.catalog import Catalog

    with Catalog.open(index) as cat:
        return user_bank(cat, model.model_id)


# -- subclasses and summaries --------------------------------------------------------------

def subclasses(
    index: IndexOpt = None, album: AlbumOpt = None,
    levels: Annotated[int, typer.Option(min=1, max=4, help="Levels of splitting (L).")] = 2,
    components: Annotated[str, typer.Option(
        help="'bic' (choose per node) or a fixed number of parts per split.")] = "bic",
    min_size: Annotated[int, typer.Option(min=2, help="Smallest sub-class worth splitting off.")] = 20,
    top: Annotated[int, typer.Option(help="Faces per contact sheet (nearest the medoid).")] = 16,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Kinds of each expression in the album: recursive EM sub-classes (paper 003, Alg. 2),
    a tree with sizes and one contact sheet per node."""
    from ferindex.analysis.album import album_root, face_images
    from ferindex.analysis.contact_sheet import contact_sheet
    from ferindex.analysis.subclasses import SubclassDiscovery
    from ferindex.analysis.summary import top_k_near_medoid

    def body(where: Path, cat: "Catalog", faces: "AlbumFaces") -> dict:
        sd = SubclassDiscovery(max_level=levels, n_components=n_comp, min_size=min_size).fit(
            faces.X, faces.labels)
        folder = out or where / "sheets" / "subclasses"
        root, nodes = album_root(cat), []
        words = _node_descriptions(cat, faces, sd.tree_)
        for node in sd.tree_.values():
            members = node.indices[top_k_near_medoid(faces.X[node.indices], top)]
            sheet = folder / (node.id.replace("/", "_") + ".png")
            contact_sheet(face_images(cat, faces.ids[members].tolist()),
                          [str(faces.ids[i]) for i in members], cols=4, path=sheet,
                          title=f"{node.id} ({node.size} faces)")
            nodes.append({**node.to_dict(), "medoid": face_doc(faces, node.medoid, root),
                          "description": words[node.id], "sheet": str(sheet)})
        return {"faces": len(faces), "nodes": nodes}

    n_comp = guarded(as_json, lambda: _components(components))
    doc = guarded(as_json, lambda: on_album_faces(index, album, body, QUALITY_FLOOR))
    if as_json:
        output.emit_json(doc)
        return
    for n in doc["nodes"]:
        output.stdout.print(f"{'  ' * n['level']}{n['id'].split('/')[-1] if n['level'] else n['id']}"
                            f"  [bold]{n['size']}[/] faces  (medoid face {n['medoid']['face_id']})"
                            f"\n{'  ' * n['level']}  {n['description']}")
    output.stdout.print(f"contact sheets in {Path(doc['nodes'][0]['sheet']).parent}")


def _node_descriptions(cat: "Catalog", faces: "AlbumFaces", tree: dict) -> dict[str, str]:
    """{node id: what sets it apart} (mouth opening from the landmarks, softmax mix, size)."""
    from ferindex.analysis.album import landmarks68, probs_matrix
    from ferindex.analysis.subclasses import describe_nodes, mouth_aspect_ratio

    classes = model_classes(cat)
    return describe_nodes(tree, probs_matrix(faces, len(classes)), classes,
                          mouth_aspect_ratio(landmarks68(cat, faces.ids)))


def _components(text: str) -> str | int:
    if text == "bic":
        return text
    if not text.isdigit() or int(text) < 2:
        raise FerindexError(f"--components must be 'bic' or a number of parts >= 2, not {text!r}")
    return int(text)


def summarize(
    index: IndexOpt = None, album: AlbumOpt = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of faces in the summary.")] = 12,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The album in N faces covering its expression groups (medoid first, then spread)."""
    from ferindex.analysis.album import album_root, caption, face_images
    from ferindex.analysis.contact_sheet import contact_sheet
    from ferindex.analysis.summary import AlbumSummary

    def body(where: Path, cat: "Catalog", faces: "AlbumFaces") -> dict:
        s = AlbumSummary(n=n).fit(faces.X, faces.labels)
        path = out or where / "sheets" / "summary.png"
        contact_sheet(face_images(cat, faces.ids[s.selected_].tolist()),
                      [caption(faces, i) for i in s.selected_], cols=4, path=path)
        root = album_root(cat)
        return {"groups": s.allocation_, "sheet": str(path),
                "faces": [face_doc(faces, i, root) for i in s.selected_]}

    doc = guarded(as_json, lambda: on_album_faces(index, album, body, QUALITY_FLOOR))
    if as_json:
        output.emit_json(doc)
        return
    for f in doc["faces"]:
        output.stdout.print(f"{f['label']:<12} face {f['face_id']:<6} {f['path']} {tuple(f['box'])}")
    output.stdout.print(f"contact sheet: {doc['sheet']}")


# -- best shots ----------------------------------------------------------------------------

def bestshot(
    index: IndexOpt = None, album: AlbumOpt = None,
    gap: Annotated[float, typer.Option(help="Seconds between shots of one burst.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Best photo of each burst (EXIF time): most faces smiling with open eyes."""
    from ferindex.analysis.album import album_root
    from ferindex.analysis.bestshot import best_shots

    def body() -> list[dict]:
        _, cat = open_catalog(index, album)
        with cat:
            shots, paths = _shots(cat)
            root = album_root(cat)
            return [{"best": str(root / paths[best]), "score": shots[best].score()[0],
                     "burst": [str(root / paths[i]) for i in group]}
                    for group, best in best_shots(shots, gap)]

    output.emit_rows(guarded(as_json, body), as_json,
                     lambda b: f"[bold]{b['best']}[/] ({b['score']} smiling with open eyes) best of {len(b['burst'])}",
                     "no bursts (photos taken seconds apart) found")


def _shots(cat) -> tuple[list, list[str]]:
    """A Shot per photo with faces: time, people, (smile prob, EAR) per face."""
    from ferindex.analysis.bestshot import Shot, eye_aspect_ratio, parse_time

    happy = model_classes(cat).index("happiness")
    shots, paths, by_photo = [], [], {}
    for pid, path, taken, lm, probs, person in cat.photo_faces(QUALITY_FLOOR):
        if pid not in by_photo:
            by_photo[pid] = len(shots)
            shots.append(Shot(pid, parse_time(taken)))
            paths.append(path)
        shot = shots[by_photo[pid]]
        lm = np.frombuffer(lm, np.float32).reshape(-1, 2) if lm else None
        ear = eye_aspect_ratio(lm) if lm is not None and lm.shape == (68, 2) else 1.0
        smile = float(np.frombuffer(probs, np.float32)[happy]) if probs else 0.0
        shot.faces.append((smile, ear))
        if person is not None:
            shot.people = shot.people | {int(person)}
    return shots, paths
