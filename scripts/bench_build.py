"""Album pipeline speed: build throughput, search latency, end-to-end query latency.

1. `build`: a fresh index (in a temporary folder) over every photo in <data>/photos
   (dlib_faces, dlib_johns, face_recognition): photos/s and faces/s for the whole
   scan -> decode -> detect -> landmarks -> align -> identity -> embed -> commit path, with
   identity descriptors on, twice in one run: the former settings (`hog-plain`: HOG upsampled
   on every photo, no checks, in the writer's process) and the current defaults (checked HOG
   with adaptive upsampling, a worker process per CPU), plus the time of an unchanged rebuild.
2. `search`: p50/p95 latency of one k-NN query against 10k and 100k indexed faces. These vectors
   are SYNTHETIC (Gaussian, the model's dimension) inserted straight into the vector index: the
   shared photos hold only a few hundred faces, and search cost depends on count and dimension,
   not on where vectors came from. Index construction time is reported too (what a reader pays
   when it has to rebuild a stale cache).
3. `query`: end-to-end latency of `query_photo` (decode, detect, align, embed, search) on a real
   photo against the index of step 1, model already loaded; and one cold `ferindex query` process
   (includes Python, torch and model start-up).
Usage: python scripts/bench_build.py [--parts build search query] [--sizes 10000 100000]
       [--queries 200] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.embed import load_model
from ferindex.nn.precision import cpu_name
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.pipeline.query import query_photo
from ferindex.store import ann
from ferindex.store.vectors import VectorIndex

QUERY_PHOTO = "photos/dlib_faces/2008_001322.jpg"


def _pct(samples: list[float]) -> dict:
    a = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "n": len(a)}


class DlibNetIdentity:
    """The former identity stage, dlib's own CPU forward pass (`compute_face_descriptor`); the
    build now runs the same weights in PyTorch (faces/identity.py). Kept here only to time the
    old settings."""

    def encode(self, rgb: np.ndarray, detections) -> np.ndarray:
        from ferindex.faces import dlib_models
        from ferindex.faces.identity import dlib_shapes

        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        return np.asarray(dlib_models.face_recognizer().compute_face_descriptor(img, dlib_shapes(detections)),
                          np.float32).reshape(len(detections), 128)


# old: HOG upsampled on every photo, no checks, dlib's identity network, in the writer's process
BUILD_SETTINGS = {"old": (BuildOptions(detector="hog-plain", workers=1), {"identity_encoder": DlibNetIdentity()}),
                  "new": (BuildOptions(), {})}


def bench_build(photos: Path, index: Path, options: BuildOptions, inject: dict) -> dict:
    t0 = time.perf_counter()
    rep = build_album(photos, index, options, **inject)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = build_album(photos, index, options, **inject)
    second = time.perf_counter() - t0
    return {"detector": rep_detector(index), "workers": options.workers or "one per CPU",
            "photos": rep.seen, "processed": rep.detected, "faces": rep.faces_added,
            "errors": len(rep.errors), "seconds": round(first, 2),
            "photos_per_s": round(rep.detected / first, 2),
            "faces_per_s": round(rep.faces_added / first, 2),
            "unchanged_rebuild_s": round(second, 3), "unchanged_detected": again.detected}


def rep_detector(index: Path) -> str:
    from ferindex.store.catalog import Catalog

    with Catalog.open(index) as cat:
        return f"{cat.get_meta('detector')} upsample {cat.get_meta('upsample')}"


def bench_search(sizes: list[int], dim: int, n_queries: int, k: int = 10) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        X = rng.standard_normal((n, dim), dtype=np.float32)
        t0 = time.perf_counter()
        vi = VectorIndex.from_vectors(np.arange(n), X, kind="expression", model_id="synthetic",
                                      metric="euclidean")
        built = time.perf_counter() - t0
        Q = rng.standard_normal((n_queries, dim), dtype=np.float32)
        times = []
        for q in Q:
            t0 = time.perf_counter()
            vi.search(q, k)
            times.append(time.perf_counter() - t0)
        out.append({"faces": n, "vectors": "synthetic", "dim": dim, "k": k,
                    "index": ann.plan_for(n, dim).layout,
                    "build_s": round(built, 3), **_pct(times)})
    return out


def bench_query(photo: Path, index: Path, repeats: int) -> dict:
    query_photo(photo, index, k=10)  # warm: model, detector, FAISS file
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        query_photo(photo, index, k=10)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ferindex.cli.app", "query", str(photo),
                           "--index", str(index), "--json"], capture_output=True, text=True)
    cold = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"cold query failed: {proc.stderr.strip()}")
    return {"photo": str(photo), "warm": _pct(times), "cold_cli_s": round(cold, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=10, help="end-to-end query repetitions")
    ap.add_argument("--parts", nargs="+", default=["build", "search", "query"],
                    choices=["build", "search", "query"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = data_dir()
    if data is None:
        raise SystemExit(DATA_HINT)
    model = load_model()
    env = {"cpu": cpu_name(), "cores": os.cpu_count(),
           "model": model.model_id, "dim": model.dim}
    result: dict = {"env": env}
    with tempfile.TemporaryDirectory(prefix="ferindex-bench-") as tmp:
        if "build" in args.parts or "query" in args.parts:
            result["build"] = {name: bench_build(data / "photos", Path(tmp) / name, opts, inject)
                               for name, (opts, inject) in BUILD_SETTINGS.items()}
            result["build_speedup"] = round(result["build"]["new"]["photos_per_s"]
                                            / result["build"]["old"]["photos_per_s"], 2)
        if "search" in args.parts:
            result["search"] = bench_search(args.sizes, model.dim, args.queries)
        if "query" in args.parts:
            result["query"] = bench_query(data / QUERY_PHOTO, Path(tmp) / "new", args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"model {env['model']} (d={env['dim']}), {env['cores']} cores")
    for name, b in result.get("build", {}).items():
        print(f"build ({name} settings: {b['detector']}, workers {b['workers']}) over "
              f"{data / 'photos'}: {b['photos']} photos ({b['errors']} errors), {b['faces']} faces "
              f"in {b['seconds']} s -> {b['photos_per_s']} photos/s, {b['faces_per_s']} faces/s;"
              f" unchanged rebuild {b['unchanged_rebuild_s']} s ({b['unchanged_detected']} photos"
              " re-detected)")
    if "build_speedup" in result:
        print(f"build speed-up, new / old settings: {result['build_speedup']}x")
    if "search" in result:
        print("search latency, one query, k=10 (SYNTHETIC vectors inserted into the index):")
        print(f"  {'faces':>8} {'index':>13} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8}")
        for s in result["search"]:
            print(f"  {s['faces']:>8} {s['index']:>13} {s['build_s']:>8} {s['p50_ms']:>8} "
                  f"{s['p95_ms']:>8}")
    if "query" in result:
        q = result["query"]
        print(f"end-to-end query (decode+detect+align+embed+search) on {Path(q['photo']).name}: "
              f"p50 {q['warm']['p50_ms']} ms, p95 {q['warm']['p95_ms']} ms (model loaded); "
              f"cold `ferindex query` process {q['cold_cli_s']} s")


if __name__ == "__main__":
    main()
