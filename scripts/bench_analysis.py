"""Album analysis speed at 5k faces: does every analysis command answer in seconds?

1. A real index: `ferindex build` over a few shared photos (dlib_faces + dlib_johns +
   face_recognition examples), or an existing one with `--source INDEX`.
2. A synthetic index of `--faces` faces (default 5000) made through the public catalog API
   (`Catalog.add_photo`): each face is a copy of a real face's row (chip, thumbnail, box,
   softmax posterior) with jittered vectors: expression vector + N(0, (0.1 * per-dim std)^2),
   identity descriptor + N(0, 0.02^2) (well inside dlib's 0.6 same-person radius, so the real
   people stay people). One face per photo; photos come in bursts of 3, two seconds apart
   (EXIF-style `taken_at`) so `bestshot` has work. The landmarks field holds the chip's
   landmarks (eye aspect ratio is scale-free).
3. Timings, in this process (the model is loaded once first, so a row excludes Python/torch
   start-up, reported separately as a cold `ferindex info`): KNN-labelling all faces (what a
   build does after embedding and `ferindex label` after each label), then each command through
   the CLI (typer's CliRunner, `--json`).
UMAP is left out unless `--umap`: its first call compiles numba kernels (about a minute, shown
on stderr), later calls in the same process are fast.

Usage: python scripts/bench_analysis.py [--faces 5000] [--source INDEX] [--umap] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ferindex.analysis.album import label_faces
from ferindex.config import DATA_HINT, data_dir
from ferindex.embed import load_model
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord

ALBUM = ["photos/dlib_faces", "photos/dlib_johns/John_Salley", "photos/dlib_johns/John_Savage",
         "photos/dlib_johns/John_Schneider", "photos/face_recognition/examples/obama_small.jpg",
         "photos/face_recognition/examples/two_people.jpg"]
META_KEYS = ("model_id", "model_ref", "metric", "detector", "upsample", "model_pack", "album")
EXPRESSION, IDENTITY = "expression", "identity"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_source(root: Path, work: Path) -> Path:
    """Copy a few shared photos into work/album and `ferindex build` it; returns the index."""
    from ferindex.pipeline.build import build_album

    album = work / "album"
    album.mkdir(parents=True)
    for rel in ALBUM:
        src = root / rel
        for f in ([src] if src.is_file() else sorted(src.glob("*.jpg"))):
            shutil.copyfile(f, album / f"{src.name}_{f.name}" if src.is_dir() else album / f.name)
    t0 = time.perf_counter()
    rep = build_album(album, album / ".ferindex")
    log(f"built the source index: {rep.seen} photos, {rep.faces_added} faces"
        f" in {time.perf_counter() - t0:.1f} s")
    return album / ".ferindex"


def synthesize(source: Path, dest: Path, n: int, seed: int = 0) -> dict:
    """Write an n-face index at dest from the real faces of source (see module docstring)."""
    rng = np.random.default_rng(seed)
    with Catalog.open(source) as src:
        meta = {k: src.get_meta(k) or "" for k in META_KEYS}
        ids, E = src.load_vectors(EXPRESSION, meta["model_id"])
        id_model = (src.vector_models(IDENTITY) or [None])[0]
        iid, I = src.load_vectors(IDENTITY, id_model) if id_model else (np.empty(0), None)
        ident = dict(zip(iid.tolist(), I)) if I is not None else {}
        details = src.face_details(ids.tolist())
        chips, lms = src.chips(ids.tolist()), src.chip_landmarks(ids.tolist())
        thumbs = src.thumbnails(ids.tolist())
    sigma = 0.1 * E.std(axis=0)
    t0 = datetime(2024, 5, 1, 12)
    with Catalog.open(dest, create=True) as cat:
        with cat.transaction():
            for i in range(n):
                j = i % len(ids)
                fid, d = int(ids[j]), details[int(ids[j])]
                vec = {(EXPRESSION, meta["model_id"]):
                       E[j] + rng.normal(size=E.shape[1]).astype(np.float32) * sigma}
                if fid in ident:
                    vec[(IDENTITY, id_model)] = (ident[fid] + rng.normal(size=128) * 0.02
                                                 ).astype(np.float32)
                face = FaceRecord(box=tuple(d["box"]), score=1.0,
                                  landmarks=lms[j] if lms is not None else np.zeros((68, 2)),
                                  chip=chips[j], thumb=thumbs.get(fid), vectors=vec,
                                  probs=d["probs"], label=d["label"],
                                  probs_model=meta["model_id"])
                taken = t0 + timedelta(seconds=60 * (i // 3) + 2 * (i % 3))
                cat.add_photo(PhotoRecord(f"synthetic/p{i:05d}.jpg", 1, 1, f"h{i}", "ok",
                                          taken_at=taken.strftime("%Y:%m:%d %H:%M:%S"),
                                          faces=[face]))
            for k, v in meta.items():
                cat.set_meta(k, v)
            cat.bump_generation()
    return {"source_faces": len(ids), "faces": n, "with_identity": sum(
        int(ids[i % len(ids)]) in ident for i in range(n))}


def timed(name: str, fn, rows: list[dict], note: str = "") -> object:
    log(f"... {name}")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    rows.append({"step": name, "seconds": round(dt, 2), "note": note})
    log(f"    {dt:.2f} s {note}")
    return out


def cli(*args: str) -> object:
    from typer.testing import CliRunner

    from ferindex.cli.app import app

    res = CliRunner().invoke(app, [*args, "--json"])
    if res.exit_code != 0:
        raise SystemExit(f"ferindex {' '.join(args)} failed ({res.exit_code}): {res.output[-2000:]}")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--source", type=Path, help="an existing index to copy faces from")
    ap.add_argument("--umap", action="store_true", help="also time `map --method umap`")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_analysis_"))
    try:
        source = args.source
        if source is None:
            root = data_dir()
            if root is None:
                raise SystemExit(DATA_HINT)
            source = build_source(root, work)
        idx = str(work / "synthetic")
        rows: list[dict] = []
        info = timed(f"make the {args.faces}-face index", lambda: synthesize(
            source, Path(idx), args.faces), rows, "catalog API, one transaction")
        with Catalog.open(idx) as cat:
            model = load_model(cat.get_meta("model_ref") or None)  # once: later rows share it
            timed(f"KNN-label {args.faces} faces (K=11, bank {len(model.reference_bank()[1])})",
                  lambda: label_faces(cat, model), rows, "what build / label store")
        photos = [str(p) for p in sorted(Path(source).parent.glob("*.jpg"))[:5]]
        timed(f"classify {len(photos)} photos (no index)", lambda: cli("classify", *photos),
              rows, "detect + align + embed + KNN")
        timed("info", lambda: cli("info", "--index", idx), rows)
        people = timed("people (HDBSCAN, first run)", lambda: cli("people", "--index", idx), rows,
                       f"{info['with_identity']} identity descriptors")
        timed("people --recluster", lambda: cli("people", "--index", idx, "--recluster"), rows)
        person = str(people[0]["id"]) if people else "1"
        hits = timed("find --person P --expression happy", lambda: cli(
            "find", "--index", idx, "--person", person, "--expression", "happy"), rows)
        rows[-1]["note"] = f"{len(hits)} hits, person of {people[0]['count'] if people else 0}"
        timed("find --expression neutral --k 100", lambda: cli(
            "find", "--index", idx, "--expression", "neutral", "--k", "100"), rows)
        timed("summarize --n 12", lambda: cli("summarize", "--index", idx, "--n", "12"), rows,
              "incl. contact sheet")
        tree = timed("subclasses (BIC, L=2)", lambda: cli("subclasses", "--index", idx), rows)
        rows[-1]["note"] = f"{len(tree['nodes'])} nodes, a contact sheet each"
        timed("map --method tsne", lambda: cli("map", "--index", idx, "--method", "tsne"), rows,
              "computed")
        timed("map --method tsne (cached)", lambda: cli("map", "--index", idx, "--method",
                                                        "tsne"), rows, "read from the catalog")
        timed("map --method tsne --color person", lambda: cli(
            "map", "--index", idx, "--method", "tsne", "--color", "person"), rows, "cached")
        if args.umap:
            timed("map --method umap (first: numba compile)", lambda: cli(
                "map", "--index", idx, "--method", "umap"), rows)
        timed("bestshot", lambda: cli("bestshot", "--index", idx), rows)
        query = sorted(Path(source).parent.glob("*.jpg"))[0]
        timed("query IMG --person P", lambda: cli("query", str(query), "--index", idx,
                                                  "--person", person), rows)
        timed("label FACE happiness (re-votes every face)", lambda: cli(
            "label", "1", "happiness", "--index", idx), rows)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ferindex.cli.app", "info", "--index", idx,
                        "--json"], check=True, capture_output=True)
        rows.append({"step": "cold `ferindex info` process", "seconds":
                     round(time.perf_counter() - t0, 2), "note": "Python + imports"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    env = {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
           "model": model.model_id, **info}
    if args.json:
        print(json.dumps({"env": env, "rows": rows}, indent=2))
        return
    print(f"analysis benchmark: {env}")
    w = max(len(r["step"]) for r in rows)
    print(f"| {'step':<{w}} | seconds | note |")
    print(f"|{'-' * (w + 2)}|--------:|------|")
    for r in rows:
        print(f"| {r['step']:<{w}} | {r['seconds']:7.2f} | {r['note']} |")


if __name__ == "__main__":
    main()
