"""Album analysis commands: classify, subclasses, summarize, people, find, map, label, bestshot.

`register(app)` adds them to the typer app (cli/app.py calls it after defining its own
commands). Each command is thin: read arrays from the index (analysis/album.py), run one
analysis component, print a table or one JSON document (cli/output.py rules).
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional, TypeVar

import numpy as np
import typer

from ferindex.cli import output

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]
IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="Index folder (default: <album>/.ferindex, or ./.ferindex).")]
AlbumOpt = Annotated[Optional[Path], typer.Option(
    "--album", help="Album folder whose <album>/.ferindex index to use.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Where to write the PNG(s) (default: inside the index folder).")]


class Method(str, Enum):
    tsne = "tsne"
    umap = "umap"


class ColorBy(str, Enum):
    label = "label"
    subclass = "subclass"
    person = "person"


def _run(as_json: bool, fn: Callable[[], T]) -> T:
    """The app's error handling (one line + exit code, never a traceback), plus KeyError and
    ValueError from bad option values (unknown person, bad component count...)."""
    from ferindex.cli.app import _guarded
    from ferindex.errors import FerindexError

    def body() -> T:
        try:
            return fn()
        except (KeyError, ValueError) as e:
            raise FerindexError(str(e.args[0]) if e.args else str(e)) from e

    return _guarded(as_json, body)


def _open(index: Path | None, album: Path | None):
    from ferindex.cli.app import _index_for
    from ferindex.store.catalog import Catalog

    where = _index_for(index, album)
    return where, Catalog.open(where)


def _face_doc(faces, i: int, root: Path) -> dict:
    return {"face_id": int(faces.ids[i]), "path": str(root / faces.paths[i]),
            "box": faces.boxes[i].tolist(), "label": str(faces.labels[i])}


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
    user_weight: Annotated[float, typer.Option(help="Votes per user-labelled face.")] = 2.0,
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

    results = _run(as_json, body)
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
    from ferindex.analysis.album import user_labels
    from ferindex.errors import CatalogError
    from ferindex.store.catalog import Catalog

    with Catalog.open(index) as cat:
        labels = user_labels(cat)
        ids, X = cat.load_vectors("expression", model.model_id)
    if labels and not len(ids):
        raise CatalogError(f"index {index} was built with another model than {model.model_id}")
    keep = np.isin(ids, list(labels))
    return X[keep], np.array([labels[int(i)] for i in ids[keep]])


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
    from ferindex.analysis.album import album_root, face_images, load_faces
    from ferindex.analysis.contact_sheet import contact_sheet
    from ferindex.analysis.subclasses import SubclassDiscovery
    from ferindex.analysis.summary import top_k_near_medoid

    n_comp: str | int = components if components == "bic" else int(components)

    def body() -> dict:
        where, cat = _open(index, album)
        with cat:
            faces = load_faces(cat)
            sd = SubclassDiscovery(max_level=levels, n_components=n_comp, min_size=min_size).fit(
                faces.X, faces.labels)
            folder = out or where / "sheets" / "subclasses"
            root, nodes = album_root(cat), []
            for node in sd.tree_.values():
                members = node.indices[top_k_near_medoid(faces.X[node.indices], top)]
                sheet = folder / (node.id.replace("/", "_") + ".png")
                contact_sheet(face_images(cat, faces.ids[members].tolist()),
                              [str(faces.ids[i]) for i in members], cols=4, path=sheet,
                              title=f"{node.id} ({node.size} faces)")
                nodes.append({**node.to_dict(), "medoid": _face_doc(faces, node.medoid, root),
                              "sheet": str(sheet)})
            return {"faces": len(faces), "nodes": nodes}

    doc = _run(as_json, body)
    if as_json:
        output.emit_json(doc)
        return
    for n in doc["nodes"]:
        output.stdout.print(f"{'  ' * n['level']}{n['id'].split('/')[-1] if n['level'] else n['id']}"
                            f"  [bold]{n['size']}[/] faces  (medoid face {n['medoid']['face_id']})")
    output.stdout.print(f"contact sheets in {Path(doc['nodes'][0]['sheet']).parent}")


def summarize(
    index: IndexOpt = None, album: AlbumOpt = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of faces in the summary.")] = 12,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The album in N faces covering its expression groups (medoid first, then spread)."""
    from ferindex.analysis.album import album_root, caption, face_images, load_faces
    from ferindex.analysis.contact_sheet import contact_sheet
    from ferindex.analysis.summary import AlbumSummary

    def body() -> dict:
        where, cat = _open(index, album)
        with cat:
            faces = load_faces(cat)
            s = AlbumSummary(n=n).fit(faces.X, faces.labels)
            path = out or where / "sheets" / "summary.png"
            contact_sheet(face_images(cat, faces.ids[s.selected_].tolist()),
                          [caption(faces, i) for i in s.selected_], cols=4, path=path)
            root = album_root(cat)
            return {"groups": s.allocation_, "sheet": str(path),
                    "faces": [_face_doc(faces, i, root) for i in s.selected_]}

    doc = _run(as_json, body)
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
    as_json: JsonOpt = False,
) -> None:
    """People in the album (HDBSCAN on identity descriptors): counts and a sample face."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import IDENTITY, album_root, load_faces

    def body() -> list[dict]:
        _, cat = _open(index, album)
        with cat:
            if name:
                ppl.name_person(cat, *name)
            if merge:
                ppl.merge_people(cat, *merge)
            if recluster or not ppl.list_people(cat):
                faces = load_faces(cat, IDENTITY)
                labels = ppl.PeopleClustering(min_cluster_size=min_cluster_size).fit(faces.X).labels_
                ppl.store_clusters(cat, faces.ids.tolist(), labels)
            root, rows = album_root(cat), ppl.list_people(cat)
            details = cat.face_details([r["sample_face"] for r in rows])
            return [{**r, "sample": {"path": str(root / details[r["sample_face"]]["path"]),
                                     "box": details[r["sample_face"]]["box"]}} for r in rows]

    rows = _run(as_json, body)
    if as_json:
        output.emit_json(rows)
        return
    for r in rows:
        output.stdout.print(f"person {r['id']:<4} {r['name'] or '(unnamed)':<20} {r['count']:>5} faces"
                            f"  e.g. {r['sample']['path']} {tuple(r['sample']['box'])}")
    if not rows:
        output.stdout.print("no person with enough faces found")


def find(
    index: IndexOpt = None, album: AlbumOpt = None,
    person: Annotated[Optional[str], typer.Option(help="Person id or name (`ferindex people`).")] = None,
    expression: Annotated[Optional[str], typer.Option(
        help="Expression class, e.g. happiness (a prefix such as 'happy' works).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of faces.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Faces of a person and/or an expression ("this person, smiling"), most confident first."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import album_root, load_faces, user_labels
    from ferindex.embed import load_model

    def body() -> list[dict]:
        if person is None and expression is None:
            raise ValueError("give --person and/or --expression")
        _, cat = _open(index, album)
        with cat:
            faces = load_faces(cat)
            keep = np.ones(len(faces), dtype=bool)
            if person is not None:
                keep &= faces.person_ids == ppl.resolve_person(cat, person)
            score = np.ones(len(faces))
            if expression is not None:
                classes = load_model(cat.get_meta("model_ref") or None).classes
                cls = _match_class(expression, classes)
                c, mine = classes.index(cls), user_labels(cat)
                # rank by the model's probability; a face the user labelled is certain
                score = np.array([1.0 if int(fid) in mine else (p[c] if p is not None else 0.0)
                                  for fid, p in zip(faces.ids, faces.probs)])
                keep &= faces.labels == cls
            order = [i for i in np.argsort(-score, kind="stable") if keep[i]][:k]
            root = album_root(cat)
            return [{**_face_doc(faces, i, root), "score": round(float(score[i]), 4),
                     "person_id": int(faces.person_ids[i])} for i in order]

    hits = _run(as_json, body)
    if as_json:
        output.emit_json(hits)
        return
    for h in hits:
        output.stdout.print(f"{h['score']:.2f} {h['label']:<10} face {h['face_id']:<6} {h['path']} "
                            f"{tuple(h['box'])}")
    if not hits:
        output.stdout.print("no matching face")


def _match_class(name: str, classes: list[str]) -> str:
    """'happy' -> 'happiness': exact name, else the one class sharing the first 4 letters."""
    name = name.lower()
    if name in classes:
        return name
    hits = [c for c in classes if c.startswith(name[:4]) or name.startswith(c[:4])]
    if len(hits) != 1:
        raise ValueError(f"unknown expression {name!r}: choose one of {', '.join(classes)}")
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
    from ferindex.analysis.album import album_root, load_faces
    from ferindex.analysis.projection import Projection, cache_key

    def body() -> dict:
        where, cat = _open(index, album)
        with cat:
            faces = load_faces(cat)
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

    doc = _run(as_json, body)
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

    fig, ax = plt.subplots(figsize=(7, 6))
    names = np.unique(groups)
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    for j, g in enumerate(names):
        sel = groups == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(j), label=f"{g} ({sel.sum()})")
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
    """Label one face yourself; your labels join the KNN votes (`classify --index`) and override
    the model's label in find/summarize/subclasses."""
    from ferindex.analysis.album import set_user_label
    from ferindex.embed import load_model

    def body() -> dict:
        _, cat = _open(index, album)
        with cat:
            value = None
            if new_label.lower() != "none":
                value = _match_class(new_label, load_model(cat.get_meta("model_ref") or None).classes)
            set_user_label(cat, face_id, value)
            return {"face_id": face_id, "label": value}

    doc = _run(as_json, body)
    if as_json:
        output.emit_json(doc)
        return
    output.stdout.print(f"face {doc['face_id']}: {doc['label'] or 'user label removed'}")


def bestshot(
    index: IndexOpt = None, album: AlbumOpt = None,
    gap: Annotated[float, typer.Option(help="Seconds between shots of one burst.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Best photo of each burst (EXIF time): most faces smiling with open eyes."""
    from ferindex.analysis.album import album_root
    from ferindex.analysis.bestshot import best_shots

    def body() -> list[dict]:
        _, cat = _open(index, album)
        with cat:
            shots, paths = _shots(cat)
            root = album_root(cat)
            return [{"best": str(root / paths[best]), "score": shots[best].score()[0],
                     "burst": [str(root / paths[i]) for i in group]}
                    for group, best in best_shots(shots, gap)]

    bursts = _run(as_json, body)
    if as_json:
        output.emit_json(bursts)
        return
    for b in bursts:
        output.stdout.print(f"[bold]{b['best']}[/] ({b['score']} smiling with open eyes)"
                            f" best of {len(b['burst'])}")
    if not bursts:
        output.stdout.print("no bursts (photos taken seconds apart) found")


def _shots(cat) -> tuple[list, list[str]]:
    """A Shot per photo with faces: time, people, (smile prob, EAR) per face."""
    from ferindex.analysis.bestshot import Shot, eye_aspect_ratio, parse_time
    from ferindex.embed import load_model

    happy = load_model(cat.get_meta("model_ref") or None).classes.index("happiness")
    shots, paths, by_photo = [], [], {}
    rows = cat.con.execute(
        "SELECT p.id, p.path, p.taken_at, f.landmarks, f.probs, f.person_id FROM faces f"
        " JOIN photos p ON p.id = f.photo_id ORDER BY p.id, f.face_idx").fetchall()
    for pid, path, taken, lm, probs, person in rows:
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


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ferindex app."""
    app.command()(classify)
    app.command()(subclasses)
    app.command()(summarize)
    app.command()(people)
    app.command()(find)
    app.command("map")(map_cmd)
    app.command()(label)
    app.command()(bestshot)
