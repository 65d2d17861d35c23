"""Scale benchmark: vector caches at 100k / 1M (/ 10M) faces, and a Ray build vs in-process.

1. `ray`: the shared photos (<data>/photos) built in-process and with `--engine ray` on a local
   2-worker runtime: seconds each, and whether both found the same photos, faces (boxes within
   1 px) and vectors (lowest cosine between the two builds' vectors of the same face).
2. `scale`, for each N of --sizes: a catalog of N faces written through the catalog API, every
   face a copy of a real face's row from the step-1 index (chip, thumbnail, landmarks,
   posteriors) with SYNTHETIC vectors: expression = a real face's vector from the model's
   reference bank (28,152 FER+ and CK+ faces) + Gaussian jitter whose norm is the median distance
   between nearest real neighbours; identity = one of the album's real 128-d descriptors +
   jitter of norm 0.3 (about the spread of one person's photos). Queries are fresh jitter
   draws, not album vectors. Photos are dated an hour back, as in an album built earlier.
   Measured: catalog bytes per face; full cache build (read every vector, train, add,
   calibrate nprobe, save) and its memory (FAISS file size, resident growth); single-query
   p50/p95 (k=10) and recall@10 against exact search; the incremental refresh after adding
   1,000 faces (one committed batch, as a build writes it) and after removing them.
   N above --catalog-max is SIMULATED: vectors only, in memory (the catalog would not fit the
   disk); the index is built by the same code, the catalog size and vector read time are
   extrapolated per face from the largest real catalog.
Usage: python scripts/bench_scale.py --work DIR [--sizes 100000,1000000] [--catalog-max N]
       [--steps ray,scale] [--json]. DIR keeps the catalogs between runs (about 8 kB a face).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.pipeline.process import EXPRESSION, IDENTITY, IDENTITY_MODEL
from ferindex.store import ann
from ferindex.store.catalog import CATALOG_NAME, Catalog, FaceRecord, PhotoRecord
from ferindex.store.vectors import VectorIndex, data_files, refreshed_index, sidecar_path

BANK = Path(ann.__file__).parents[1] / "models" / "default_bank.npz"
IDENTITY_JITTER = 0.3
ADDED = 1_000
K = 10


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    import faiss

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 2**30, 1),
            "faiss": faiss.__version__, "python": platform.python_version()}


def _pct(samples: list[float], prefix: str = "") -> dict:
    a = np.asarray(samples) * 1000
    return {f"{prefix}p50_ms": round(float(np.percentile(a, 50)), 3),
            f"{prefix}p95_ms": round(float(np.percentile(a, 95)), 3)}


class Clock:
    """Wall and CPU seconds of a block. On a shared machine the CPU time of this process is
    what the step costs on an idle core; the wall time is what it took here."""

    def __enter__(self) -> "Clock":
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t
        self.cpu = time.process_time() - self.c


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- 1. Ray vs in-process ------------------------------------------------------------------------
def bench_ray(photos: Path, work: Path) -> dict:
    out = {}
    for engine in ("local", "ray"):
        index = work / f"photos_{engine}"
        shutil.rmtree(index, ignore_errors=True)
        t0 = time.perf_counter()
        rep = build_album(photos, index, BuildOptions(engine=engine, workers=2 if engine ==
                                                       "ray" else None))
        out[engine] = {"seconds": round(time.perf_counter() - t0, 1), "photos": rep.seen,
                       "faces": rep.faces_added, "errors": len(rep.errors)}
    a, b = _faces(work / "photos_local"), _faces(work / "photos_ray")
    same = a.keys() == b.keys() and all(len(a[p]) == len(b[p]) for p in a)
    box, cos = 0, 1.0
    if same:
        for p in a:
            for fa, fb in zip(a[p], b[p]):
                box = max(box, int(np.abs(fa[0] - fb[0]).max()))
                for va, vb in zip(fa[1:], fb[1:]):
                    cos = min(cos, float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)))
    out["same_photos_and_face_counts"] = same
    out["max_box_difference_px"] = box
    out["min_vector_cosine"] = round(cos, 6)
    return out


def _faces(index: Path) -> dict[str, list[tuple]]:
    """{photo: [(box, expression vector, identity vector) left to right]}."""
    with Catalog.open(index) as cat:
        model_id = cat.get_meta("model_id")
        vec = {kind: dict(zip(*cat.load_vectors(kind, m)))
               for kind, m in ((EXPRESSION, model_id), (IDENTITY, IDENTITY_MODEL))}
        out: dict[str, list[tuple]] = {p: [] for p in cat.photo_index()}
        for path, fid, *box in cat.con.execute(
                "SELECT p.path, f.id, f.x0, f.y0, f.x1, f.y1 FROM faces f JOIN photos p"
                " ON p.id = f.photo_id ORDER BY p.path, f.face_idx"):
            out[path].append((np.array(box), vec[EXPRESSION][fid], vec[IDENTITY][fid]))
    return out


# -- 2. scale ------------------------------------------------------------------------------------
class Synth:
    """Real face rows and vectors plus jitter (see the module docstring)."""

    def __init__(self, source: Path, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        with Catalog.open(source) as cat:
            self.model_id = cat.get_meta("model_id")
            ids, self.identity = cat.load_vectors(IDENTITY, IDENTITY_MODEL)
            rows = cat.con.execute(
                f"SELECT id, landmarks, chip, chip_landmarks, thumb, probs, label FROM faces"
                f" WHERE id IN ({','.join(map(str, ids.tolist()))})").fetchall()
        self.rows = [dict(r) for r in rows]
        self.bank = np.load(BANK)["embeddings"].astype(np.float32)
        flat = ann.exact_search(self.bank, self.bank[:2000], 2, 1)  # METRIC_L2
        nn = np.linalg.norm(self.bank[:2000] - self.bank[flat[:, 1]], axis=1)
        self.expr_sigma = float(np.median(nn)) / np.sqrt(self.bank.shape[1])
        self.id_sigma = IDENTITY_JITTER / np.sqrt(self.identity.shape[1])

    def expression(self, n: int) -> np.ndarray:
        base = self.bank[self.rng.integers(0, len(self.bank), n)]
        return base + self.rng.normal(0, self.expr_sigma, base.shape).astype(np.float32)

    def identity_vectors(self, n: int) -> np.ndarray:
        base = self.identity[self.rng.integers(0, len(self.identity), n)]
        return base + self.rng.normal(0, self.id_sigma, base.shape).astype(np.float32)

    def photos(self, n: int, prefix: str) -> list[PhotoRecord]:
        E, I = self.expression(n), self.identity_vectors(n)
        out = []
        for i in range(n):
            r = self.rows[int(self.rng.integers(0, len(self.rows)))]
            face = FaceRecord(
                box=(10, 10, 110, 110), score=1.0,
                landmarks=np.frombuffer(r["landmarks"], np.float32).reshape(68, 2),
                chip=np.frombuffer(r["chip"], np.uint8).reshape(48, 48),
                chip_landmarks=np.frombuffer(r["chip_landmarks"], np.float32).reshape(-1, 2),
                thumb=r["thumb"], probs=np.frombuffer(r["probs"], np.float32), label=r["label"],
                probs_model=self.model_id,
                vectors={(EXPRESSION, self.model_id): E[i], (IDENTITY, IDENTITY_MODEL): I[i]})
            out.append(PhotoRecord(f"{prefix}/{i:08d}.jpg", 100_000, 1, f"{prefix}-{i}", "ok",
                                   width=640, height=480, faces=[face]))
        return out


def make_catalog(index: Path, synth: Synth, n: int, batch: int = 20_000) -> None:
    """Write n one-face photos through the catalog API, dated an hour back; an interrupted
    run is resumed (batches are committed whole)."""
    with Catalog.open(index, create=True) as cat:
        cat.set_meta("model_id", synth.model_id)
        start = cat.counts()["photos"]
        for s in range(start, n, batch):
            recs = synth.photos(min(batch, n - s), f"p{s // batch:05d}")
            with cat.transaction():
                for rec in recs:
                    cat.add_photo(rec)
                cat.bump_generation()
        if start < n:
            an_hour_ago = time.time() - 3600
            with cat.transaction():
                cat.con.execute("UPDATE photos SET indexed_at = ? WHERE indexed_at > ?",
                                (an_hour_ago, an_hour_ago))
            cat.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _queries(synth: Synth, kind: str, n: int) -> np.ndarray:
    return synth.expression(n) if kind == EXPRESSION else synth.identity_vectors(n)


def _search_stats(vi: VectorIndex, X: np.ndarray, ids: np.ndarray, Q: np.ndarray) -> dict:
    wall, cpu = [], []
    for q in Q:
        with Clock() as c:
            vi.search(q, K)
        wall.append(c.wall)
        cpu.append(c.cpu)
    prep = VectorIndex._prepare
    metric = 1  # METRIC_L2: both kinds are Euclidean
    truth = ids[ann.exact_search(prep(X, vi.metric), prep(Q, vi.metric), K, metric)]
    ivf = _ivf(vi.index)
    return {**_pct(wall), **_pct(cpu, "cpu_"), "recall_at_10": round(ann.recall_at_k(vi.search(Q, K)[1], truth), 4),
            "layout": ann.plan_of(vi.index).layout, "nlist": ann.plan_of(vi.index).nlist,
            "nprobe": int(ivf.nprobe) if ivf is not None else None}


def _ivf(index):
    import faiss

    return faiss.try_extract_index_ivf(index)


def bench_catalog(index: Path, synth: Synth, n: int, n_queries: int) -> dict:
    make_catalog(index, synth, n)  # no-op when complete
    size = sum(f.stat().st_size for f in index.glob(CATALOG_NAME + "*"))
    out = {"faces": n, "catalog": "real (SQLite)", "catalog_bytes_per_face": round(size / n)}
    for kind, model_id in ((EXPRESSION, synth.model_id), (IDENTITY, IDENTITY_MODEL)):
        for f in data_files(index, kind):
            f.unlink()
        sidecar_path(index, kind).unlink(missing_ok=True)
        with Catalog.open(index) as cat:
            gc.collect()
            rss0 = _rss()
            with Clock() as full:
                with Clock() as read:
                    ids, X = cat.load_vectors(kind, model_id)
                vi = VectorIndex.from_vectors(ids, X, kind=kind, model_id=model_id,
                                              metric="euclidean")
                file_mb = vi.save(index, cat.generation, cat.catalog_id).stat().st_size / 2**20
            stats = _search_stats(vi, X, ids, _queries(synth, kind, n_queries))
            del X, ids
            gc.collect()
            rss = _rss() - rss0  # what stays resident: the index
            add, remove = _incremental(cat, index, synth, kind, model_id)
        out[kind] = {"dim": vi.dim, "cache_build_s": round(full.wall, 2),
                     "cache_build_cpu_s": round(full.cpu, 2), "vector_read_s": round(read.wall, 2),
                     "vector_read_cpu_s": round(read.cpu, 2), "file_mb": round(file_mb, 1),
                     "resident_growth_mb": round(rss / 2**20, 1), **stats,
                     f"refresh_after_adding_{ADDED}_s": round(add.wall, 2),
                     f"refresh_after_adding_{ADDED}_cpu_s": round(add.cpu, 2),
                     f"refresh_after_removing_{ADDED}_s": round(remove.wall, 2),
                     f"refresh_after_removing_{ADDED}_cpu_s": round(remove.cpu, 2)}
        del vi
    return out


def _incremental(cat: Catalog, index: Path, synth: Synth, kind: str, model_id: str
                 ) -> tuple[Clock, Clock]:
    """Clocks of the build's cache refresh (refreshed_index + save) after one batch of ADDED
    new faces, then after deleting them again (the catalog ends as it started)."""
    recs = synth.photos(ADDED, "added")
    with cat.transaction():
        for rec in recs:
            cat.add_photo(rec)
        cat.bump_generation()
    times = []
    for step in ("add", "remove"):
        if step == "remove":
            added = [r.id for r in cat.photo_index().values() if r.path.startswith("added/")]
            with cat.transaction():
                cat.delete_photos(added)
                cat.bump_generation()
        with Clock() as c:
            vi = refreshed_index(cat, index, kind=kind, model_id=model_id, metric="euclidean")
            vi.save(index, cat.generation, cat.catalog_id)
        times.append(c)
        del vi
    return times[0], times[1]


def _per_face(work: Path, synth: Synth) -> dict | None:
    """Catalog bytes and expression-vector read seconds per face of the largest catalog the
    work folder holds (what a simulated size is extrapolated from)."""
    sizes = sorted(int(d.name.split("_")[1]) for d in work.glob("catalog_*")
                   if (d / CATALOG_NAME).exists())
    if not sizes:
        return None
    index = work / f"catalog_{sizes[-1]}"
    with Catalog.open(index) as cat, Clock() as read:
        ids, _ = cat.load_vectors(EXPRESSION, synth.model_id)
    size = sum(f.stat().st_size for f in index.glob(CATALOG_NAME + "*"))
    return {"from_faces": len(ids), "bytes": round(size / len(ids)),
            "read_cpu_s_per_face": read.cpu / len(ids)}


def bench_simulated(n: int, synth: Synth, per_face: dict | None, n_queries: int) -> dict:
    """An N-face index from vectors in memory (no catalog): the same ann.build code."""
    out: dict = {"faces": n, "catalog": "simulated (vectors in memory)"}
    if per_face:
        out["catalog_bytes_per_face"] = per_face["bytes"]
        out["catalog_gb_extrapolated"] = round(per_face["bytes"] * n / 2**30, 1)
    for kind in (EXPRESSION,):
        X = synth.expression(n)
        ids = np.arange(1, n + 1, dtype=np.int64)
        gc.collect()
        rss0 = _rss()
        with Clock() as built:
            vi = VectorIndex.from_vectors(ids, X, kind=kind, model_id="synthetic",
                                          metric="euclidean")
        import faiss

        size = faiss.serialize_index(vi.index).nbytes
        stats = _search_stats(vi, X, ids, _queries(synth, kind, n_queries))
        inputs = X.nbytes + ids.nbytes  # resident at rss0, freed below
        del X, ids
        gc.collect()
        rss = _rss() - rss0 + inputs  # what stays resident: the index
        read = per_face["read_cpu_s_per_face"] * n if per_face else None
        out[kind] = {"dim": vi.dim, "index_build_s": round(built.wall, 1),
                     "index_build_cpu_s": round(built.cpu, 1),
                     "vector_read_cpu_s_extrapolated": round(read, 1) if read else None,
                     "file_mb": round(size / 2**20, 1), "resident_growth_mb": round(rss / 2**20, 1),
                     **stats}
        del vi
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--catalog-max", type=int, default=1_000_000)
    ap.add_argument("--steps", default="ray,scale",
                    help="ray, prepare (write the catalogs only, untimed), scale")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = data_dir()
    if data is None:
        raise SystemExit(DATA_HINT)
    args.work.mkdir(parents=True, exist_ok=True)
    steps = args.steps.split(",")
    doc: dict = {"machine": machine()}
    print(json.dumps(doc["machine"]), flush=True)
    if "ray" in steps or not (args.work / "photos_local" / CATALOG_NAME).exists():
        doc["ray_vs_in_process"] = bench_ray(data / "photos", args.work)
        print(json.dumps(doc["ray_vs_in_process"]), flush=True)
    if "prepare" in steps:
        synth = Synth(args.work / "photos_local")
        for n in (int(s) for s in args.sizes.split(",")):
            index = args.work / f"catalog_{n}"
            if n <= args.catalog_max:
                t0 = time.perf_counter()
                make_catalog(index, synth, n)
                print(f"wrote the {n}-face catalog in {time.perf_counter() - t0:.0f} s",
                      flush=True)
    if "scale" in steps:
        synth = Synth(args.work / "photos_local")
        doc["scale"] = []
        for n in (int(s) for s in args.sizes.split(",")):
            if n <= args.catalog_max:
                row = bench_catalog(args.work / f"catalog_{n}", synth, n, args.queries)
            else:
                row = bench_simulated(n, synth, _per_face(args.work, synth), args.queries)
            doc["scale"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
