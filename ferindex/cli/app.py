"""The `ferindex` command line (typer). Each command is a thin layer: parse flags, call the
pipeline, print a table or one JSON document (cli/output.py). Exit codes: 0 success (a build
that met bad files still succeeds; they are listed), 1 the query photo has no face,
2 bad input (unreadable image, missing/locked index, bad option value), 130 interrupted.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ferindex.cli import output
from ferindex.cli.options import (AlbumOpt, IndexOpt, JsonErrorsGroup, JsonOpt, PersonOpt,
                                  guarded, index_for)

app = typer.Typer(cls=JsonErrorsGroup, add_completion=False, no_args_is_help=True,
                  help="Find and organise facial expressions in photo collections.")



class Detector(str, Enum):
    hog = "hog"
    cnn = "cnn"
    insightface = "insightface"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class _BuildProgress:
    """Rich progress bar on stderr fed by the builder's progress callback."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.progress = Progress(
            TextColumn("[bold]photos"), BarColumn(), MofNCompleteColumn(),
            TextColumn("faces {task.fields[faces]}  skipped {task.fields[skipped]}"
                       "  errors {task.fields[errors]}"),
            TimeElapsedColumn(), console=output.stderr, disable=not enabled, transient=False)
        self.task = None

    def __call__(self, report, done: int, total: int, current: str) -> None:
        fields = {"faces": report.faces_added, "skipped": report.skipped,
                  "errors": len(report.errors)}
        if self.task is None:
            self.task = self.progress.add_task("build", total=total, **fields)
        self.progress.update(self.task, completed=done, total=total, **fields)

    def __enter__(self) -> "_BuildProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@app.command()
def build(
    path: Annotated[Path, typer.Argument(help="Album folder to index (searched recursively).")],
    index: IndexOpt = None,
    detector: Annotated[Optional[Detector], typer.Option(
        help="Face detector backend (a new index: default hog; an existing one keeps its"
             " own).")] = None,
    upsample: Annotated[Optional[int], typer.Option(
        min=0, max=4, help="Detector upsampling (finds smaller faces, slower; a new index:"
                           " default 1; an existing one keeps its own).")] = None,
    model_pack: Annotated[Optional[Path], typer.Option(
        help="Local insightface model pack folder (with --detector insightface).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="Expression model: a name in ferindex/models, a .json card or a folder.")] = None,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Process again files that failed before and did not change.")
    ] = False,
    identity: Annotated[bool, typer.Option(
        help="Compute 128-d identity descriptors (used by `people`).")] = True,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Photos per committed batch (a crash loses at most one batch).")] = 32,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Also drop the photos whose path is unavailable (unmounted, unreadable"
                        " folder...), with their faces and labels; without it they are kept.")
    ] = False,
    engine: Annotated[Engine, typer.Option(
        help="Where detection and embedding run: this process, or Ray workers (pip install"
             " 'ferindex[ray]').")] = Engine.local,
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster to join (host:port or 'auto'; --engine ray). Default: start a local"
             " Ray runtime.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Ray workers (--engine ray). Default: one per CPU of the runtime.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index the faces of every photo under PATH (incremental: only changes are processed)."""
    from ferindex.pipeline.build import BuildOptions, build_album

    opts = BuildOptions(detector=detector.value if detector else None, upsample=upsample,
                        model_pack=model_pack, model=model, retry_errors=retry_errors,
                        identity=identity, batch_size=batch_size, prune=prune, engine=engine.value, address=address,
                        workers=workers)
    if engine is not Engine.ray and (address or workers):
        output.fail("--address and --workers need --engine ray", 2, as_json)

    def body():
        with _BuildProgress(enabled=not as_json) as bar:
            return build_album(path, index, opts, progress=bar)

    report = guarded(as_json, body)
    stats = report.stats()
    if as_json:
        output.emit_json(stats)
        return
    t = stats["totals"]
    output.stdout.print(output.key_value_table("build summary", [
        ("album", stats["album"]), ("index", stats["index"]), ("model", stats["model_id"]),
        ("photos found", stats["seen"]), ("new", stats["new"]), ("changed", stats["changed"]),
        ("moved/renamed", stats["moved"]), ("unchanged (skipped)", stats["skipped"]),
        ("deleted", stats["deleted"]), ("faces added", stats["faces_added"]),
        ("faces removed", stats["faces_removed"]), ("re-embedded", stats["reembedded"]),
        ("recalibrated", stats["recalibrated"]), ("KNN-labelled", stats["knn_labelled"]),
        ("errors (new)", len(stats["errors"])), ("known errors", len(stats["known_errors"])),
        ("scan problems", len(stats["scan_problems"])),
        ("unavailable, kept", len(stats["unavailable"])),
        ("index now", f"{t['photos']} photos, {t['faces']} faces, {t['noface']} without a face,"
                      f" {t['errors']} unreadable"),
        ("time", f"{stats['seconds']:.1f} s ({stats['photos_per_s'] or 0:.2f} photos/s)"),
    ]))
    if stats["errors"]:
        output.stdout.print(output.errors_table("files that failed", stats["errors"]))
    if stats["known_errors"]:
        output.stdout.print(output.errors_table(
            "known errors (unchanged since they failed; --retry-errors to try again)",
            stats["known_errors"]))
    _print_scan_state(stats)


def _print_scan_state(doc: dict) -> None:
    """What the scan could not look at, and the catalogued photos kept because of it (build
    and info show the same tables)."""
    if doc["scan_problems"]:
        output.stdout.print(output.errors_table("scan problems (not indexed)",
                                                doc["scan_problems"]))
    if doc["unavailable"]:
        output.stdout.print(output.errors_table(
            "unavailable photos, kept with their faces and labels (`build --prune` drops them)",
            doc["unavailable"]))


@app.command()
def query(
    image: Annotated[Path, typer.Argument(help="Photo whose face to look for.")],
    index: IndexOpt = None,
    album: AlbumOpt = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of neighbours.")] = 10,
    face: Annotated[Optional[int], typer.Option(
        help="Face to search for, by its number left to right (default: the largest).")] = None,
    person: PersonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Album faces whose expression is nearest to the face in IMAGE (of one person with
    --person)."""
    from dataclasses import asdict

    from ferindex.pipeline.query import query_photo

    result = guarded(as_json, lambda: query_photo(image, index_for(index, album), k=k,
                                                  face=face, person=person))
    q = result.face
    qdoc = {"image": result.image, "face_index": q.index, **asdict(q)}
    del qdoc["index"]
    if as_json:
        output.emit_json([{**hit, "query": qdoc} for hit in result.hits])
        return
    output.stdout.print(
        f"query: {result.image}, face {q.index + 1} of {q.n_faces} (left to right, --face {q.index}) at "
        f"box {tuple(q.box)}: [bold]{q.label}[/] (KNN votes {q.probs[q.label]:.2f}; model:"
        f" {q.model_label} {q.model_probs[q.model_label]:.2f})")
    who = f" of person {result.person_id}" if result.person_id is not None else ""
    output.stdout.print(output.hits_table(f"{len(result.hits)} nearest faces{who}", result.hits))


@app.command()
def info(index: IndexOpt = None, album: AlbumOpt = None, as_json: JsonOpt = False) -> None:
    """What an index holds: counts, model, size on disk, last build."""
    from ferindex.pipeline.info import index_info

    doc = guarded(as_json, lambda: index_info(index_for(index, album)))
    if as_json:
        output.emit_json(doc)
        return
    last = doc["last_build"] or {}
    output.stdout.print(output.key_value_table(f"index {doc['index']}", [
        ("album", doc["album"]), ("photos", doc["photos"]), ("faces", doc["faces"]),
        ("photos without a face", doc["noface"]), ("unreadable files", doc["errors"]),
        ("model", doc["model"]), ("metric", doc["metric"]), ("detector", doc["detector"]),
        ("vectors", f"{doc['vectors']['expression']} expression,"
                    f" {doc['vectors']['identity']} identity"),
        ("size on disk", output.human_bytes(doc["size_bytes"])),
        ("vector caches", "fresh" if doc["caches_fresh"] else "stale (rebuilt on next use)"),
        ("labels", ", ".join(f"{k} {v}" for k, v in doc["labels"].items()) or None),
        ("labelled by you", doc["user_labels"]),
        ("last build", _last_build_line(last) if last else None),
    ]))
    if doc["error_files"]:
        output.stdout.print(output.errors_table("unreadable files", doc["error_files"]))
    _print_scan_state(doc)


def _last_build_line(last: dict) -> str:
    if last["finished"] is None:
        return f"started {last['started']}, not finished (running, or killed)"
    note = ", interrupted" if last["interrupted"] else ""
    note += f": {last['error']}" if last.get("error") else ""
    return f"{last['finished']} ({last['seconds']} s{note})"


@app.command()
def check(index: IndexOpt = None, album: AlbumOpt = None,
          repair: Annotated[bool, typer.Option(
              "--repair", help="Repair what was found (takes the write lock, like a build).")
          ] = False,
          as_json: JsonOpt = False) -> None:
    """Verify an index (catalog integrity, chips, vector caches) and say what --repair does."""
    from ferindex.pipeline.check import check_index

    doc = guarded(as_json, lambda: check_index(index_for(index, album), repair=repair))
    if not doc["ok"]:  # exit 2, with the findings in the same one document
        doc["error"] = (f"{doc['index']}: problems remain after the repair" if repair else
                        f"{doc['index']}: {len(doc['problems'])} problem(s) found: run"
                        f" `ferindex check --repair --index {doc['index']}`")
        doc["exit_code"] = 2
    if as_json:
        output.emit_json(doc)
    else:
        for p in doc["problems"]:
            verb = "repair: " if repair else "--repair would "
            output.stdout.print(f"{p['what']}: {p['problem']} ({verb}{p['repair']})")
        for line in doc["repaired"]:
            output.stdout.print(f"repaired: {line}")
        if doc["ok"]:
            output.stdout.print(f"{doc['index']}: no problem found" if not doc["problems"]
                                else f"{doc['index']}: repaired")
    if not doc["ok"]:
        output.report_error(doc["error"], 2, False)
        raise typer.Exit(2)


@app.command("sample-album")
def sample_album(
    dest: Annotated[Path, typer.Argument(help="Folder to write the sample photos into.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a small album of real photos bundled with installed packages (no download)."""
    from ferindex.pipeline.sample_album import write_sample_album

    paths = guarded(as_json, lambda: write_sample_album(dest))
    if as_json:
        output.emit_json({"album": str(dest), "photos": [str(p) for p in paths]})
        return
    output.stdout.print(f"wrote {len(paths)} photos to {dest}:")
    for p in paths:
        output.stdout.print(f"  {p}")


@app.command("eval")
def eval_model(
    model: Annotated[Optional[str], typer.Option(help="Model name or card path (default: the shipped model).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Skip the FER2013 7-class run (re-embeds 28k faces).")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the confusion-matrix PNG (none if not given).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the expression model on the research data (FER+, FER2013, CK+48; DESIGN §6).
    Needs FERINDEX_DATA; takes a few minutes on a CPU."""
    from ferindex.embed import load_model
    from ferindex.evaluation import evaluate, report_lines

    def run() -> tuple:
        m = load_model(model)
        return m, evaluate(m, quick, out)

    m, res = guarded(as_json, run)
    if as_json:
        output.emit_json(res)
        return
    for line in report_lines(res, m.classes):
        output.stdout.print(line, highlight=False)


def _register_analysis_commands() -> None:
    """classify, subclasses, summarize, people, find, map, label, bestshot (cli/analysis_cmds)."""
    from ferindex.cli.analysis_cmds import register

    register(app)


_register_analysis_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
