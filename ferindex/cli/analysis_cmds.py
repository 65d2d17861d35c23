"""Album analysis commands: classify, subclasses, summarize, people, find, map, label, bestshot.

`register(app)` adds them to the typer app (cli/app.py calls it after defining its own
commands). Each command is thin: read arrays from the index (analysis/album.py), run one
analysis component, print a table or one JSON document (cli/output.py rules).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import numpy as np
import typer

from ferindex.cli import output
from ferindex.analysis.album import USER_WEIGHT
from ferindex.cli.options import (AlbumOpt, IndexOpt, JsonOpt, OutOpt, PersonOpt, guarded,
                                  open_catalog)
from ferindex.errors import FerindexError
from ferindex.faces.quality import QUALITY_FLOOR

if TYPE_CHECKING:
    from ferindex.analysis.album import AlbumFaces
    from ferindex.store.catalog import Catalog

T = TypeVar("T")


class Method(str, Enum):
    tsne = "tsne"
    umap = "umap"


class ColorBy(str, Enum):
    label = "label"
    subclass = "subclass"
    person = "person"


def _on_album_faces(index: Path | None, album: Path | None,
                    fn: Callable[[Path, "Catalog", "AlbumFaces"], T], min_quality: float = 0.0
                    ) -> T:
    """Open the index's catalog, load its faces (those of at least `min_quality`), and run
    fn(index folder, catalog, faces) while the catalog is open: the common start of every
    command that analyses the whole album."""
    from ferindex.analysis.album import load_faces

    where, cat = open_catalog(index, album)
    with cat:
        return fn(where, cat, load_faces(cat, min_quality=min_quality))


def _face_doc(faces, i: int, root: Path) -> dict:
    """A face in JSON: `label` is the shown one (user, else KNN, else model), `label_source`
    says which, `confidence` is its vote share (KNN), probability (model) or 1 (user)."""
    conf = faces.confidence[i] if len(faces.confidence) else np.nan
    return {"face_id": int(faces.ids[i]), "path": str(root / faces.paths[i]),
            "box": faces.boxes[i].tolist(), "label": str(faces.labels[i]),
            "label_source": str(faces.label_source[i]) if len(faces.label_source) else None,
            "confidence": None if np.isnan(conf) else round(float(conf), 4)}


# -- classify --------------------------------------------------------------------------------

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


# -- subclasses and summaries ---------------------------------------------------------------

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
            nodes.append({**node.to_dict(), "medoid": _face_doc(faces, node.medoid, root),
                          "description": words[node.id], "sheet": str(sheet)})
        return {"faces": len(faces), "nodes": nodes}

    n_comp = guarded(as_json, lambda: _components(components))
    doc = guarded(as_json, lambda: _on_album_faces(index, album, body, QUALITY_FLOOR))
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

    classes = _classes(cat)
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
                "faces": [_face_doc(faces, i, root) for i in s.selected_]}

    doc = guarded(as_json, lambda: _on_album_faces(index, album, body, QUALITY_FLOOR))
    if as_json:
        output.emit_json(doc)
        return
    for f in doc["faces"]:
        output.stdout.print(f"{f['label']:<12} face {f['face_id']:<6} {f['path']} {tuple(f['box'])}")
    output.stdout.print(f"contact sheet: {doc['sheet']}")


# -- people ---------------------------------------------------------------------------------

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
            classes = _classes(cat)
            cls = _match_class(expression, classes)
            keep &= faces.labels == cls
            score = np.where(faces.label_source == "user", 1.0,
                             _class_share(faces.knn_probs, classes, cls))
            model_p = _class_share(faces.probs, classes, cls)
        order = [i for i in np.lexsort((-quality, -model_p, -score)) if keep[i]][:k]
        root = album_root(cat)
        return [{**_face_doc(faces, i, root), "score": round(float(score[i]), 4),
                 "model_prob": round(float(model_p[i]), 4), "quality": round(float(quality[i]), 4),
                 "person_id": None if faces.person_ids[i] < 0 else int(faces.person_ids[i])}
                for i in order]

    def run() -> list[dict]:
        if person is None and expression is None:
            raise FerindexError("give --person and/or --expression")
        return _on_album_faces(index, album, body)

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


def _classes(cat) -> list[str]:
    """The expression classes of the index's model."""
    from ferindex.embed import load_model

    return list(load_model(cat.get_meta("model_ref") or None).classes)


def _match_class(name: str, classes: list[str]) -> str:
    """'happy' -> 'happiness': exact name, else the one class sharing the first 4 letters."""
    name = name.lower()
    if name in classes:
        return name
    hits = [c for c in classes if c.startswith(name[:4]) or name.startswith(c[:4])]
    if len(hits) != 1:
        raise FerindexError(f"unknown expression {name!r}: choose one of {', '.join(classes)}")
    return hits[0]


# -- maps, labels, best shots -----------------------------------------------------------------

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
                "points": [{**_face_doc(faces, i, root), "x": float(xy[i, 0]),
                            "y": float(xy[i, 1]), "group": str(groups[i])}
                           for i in range(len(faces))]}

    doc = guarded(as_json, lambda: _on_album_faces(index, album, body))
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
                value = _match_class(new_label, list(model.classes))
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

    happy = _classes(cat).index("happiness")
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


# -- export ---------------------------------------------------------------------------------

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
            keep &= faces.labels == _match_class(expression, _classes(cat))
        # an index inside its album goes where the album goes: sidecars beside the photos
        # that are there now, not at the path the album had when it was built
        root = where.parent if where.name == INDEX_DIRNAME else album_root(cat)
        names = {p["id"]: p["name"] for p in ppl.list_people(cat)}
        rows = [{**_face_doc(faces, i, root), "person_id": _person(faces, i),
                 "person": names.get(_person(faces, i))} for i in np.flatnonzero(keep)]
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

    doc = guarded(as_json, lambda: _on_album_faces(index, album, body))
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


def _person(faces, i: int) -> int | None:
    return None if faces.person_ids[i] < 0 else int(faces.person_ids[i])


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ferindex app."""
    app.command()(classify)
    app.command()(subclasses)
    app.command()(summarize)
    app.command()(people)
    app.command()(find)
    app.command("map")(map_cmd)
    app.command()(label)
    app.command()(notface)
    app.command()(bestshot)
    app.command()(export)
