"""Which FAISS index for how many vectors, and its search depth, chosen by measurement.

Sizes (scripts/bench_scale.py measures them; README "Scale"):
- up to FLAT_MAX vectors: exact search (IndexFlat in an IndexIDMap). One 64-d query costs
  about 1 ms per 100k vectors on one core, and exact needs no training and no tuning;
- above: an inverted file (IVF) trained on the album's own vectors, nlist ~ sqrt(N) lists
  (power of two), vectors kept as float32 while they fit IVF_FLAT_BYTES, as 8-bit scalar
  codes (4x smaller) above that. `nprobe` (lists visited per query) is the smallest power of
  two whose recall@10 against exact search reaches CALIBRATION_RECALL on a sample of the
  album's own vectors, a margin over the 0.95 the issue asks for.
HNSW is not used: FAISS cannot remove vectors from it (a deleted photo would force a rebuild),
it costs M x 8 bytes of links per vector and builds far slower than an IVF on two cores.

An IVF takes ids natively (add_with_ids); an IDMap around it would break on removals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FLAT_MAX = 200_000  # exact search up to here (p50 ~2 ms for 64-d on one core)
IVF_FLAT_BYTES = 2 << 30  # float32 vectors above this: 8-bit scalar codes instead
TRAIN_PER_LIST = 64  # k-means training points per list (FAISS warns below 39)
CALIBRATION_QUERIES = 200
CALIBRATION_RECALL = 0.97  # recall@10 the chosen nprobe reaches on the calibration sample
RECALL_K = 10


@dataclass(frozen=True)
class Plan:
    """An index layout: "flat", "ivf" (float32 lists) or "ivf-sq8", and its list count."""

    layout: str
    nlist: int = 0


def plan_for(n: int, dim: int) -> Plan:
    """The layout for `n` vectors of dimension `dim` (see the module docstring)."""
    if n <= FLAT_MAX:
        return Plan("flat")
    nlist = max(1, min(1 << round(math.log2(math.sqrt(n))), n // TRAIN_PER_LIST))
    return Plan("ivf" if n * dim * 4 <= IVF_FLAT_BYTES else "ivf-sq8", nlist)


def plan_of(index) -> Plan:
    """The layout of a built index (from its FAISS type)."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return Plan("flat")
    return Plan("ivf-sq8" if isinstance(ivf, faiss.IndexIVFScalarQuantizer) else "ivf",
                int(ivf.nlist))


def still_fits(index, n: int, dim: int) -> bool:
    """Whether `index` can keep growing to `n` vectors without retraining: same layout, list
    count within a factor 2 of the one `n` calls for."""
    have, want = plan_of(index), plan_for(n, dim)
    if have.layout != want.layout:
        return False
    return have.layout == "flat" or 0.5 <= have.nlist / want.nlist <= 2


def build(X: np.ndarray, ids: np.ndarray, metric: int, seed: int = 0):
    """A search-ready index over `X` (prepared float32, ids int64) in the layout `plan_for`
    picks; an IVF is trained on a sample of X and its nprobe calibrated on X itself."""
    faiss = _faiss()
    n, d = X.shape
    plan = plan_for(n, d)
    if plan.layout == "flat":
        base = faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
        index = faiss.IndexIDMap(base)
        index.add_with_ids(X, ids)
        return index
    quantizer = (faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT
                 else faiss.IndexFlatL2(d))
    if plan.layout == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, plan.nlist, metric)
    else:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, plan.nlist,
                                              faiss.ScalarQuantizer.QT_8bit, metric)
    rng = np.random.default_rng(seed)
    sample = X[np.sort(rng.choice(n, min(n, plan.nlist * TRAIN_PER_LIST), replace=False))]
    index.cp.seed = seed
    index.train(sample)
    index.add_with_ids(X, ids)
    calibrate(index, X, ids, metric, rng)
    return index


def calibrate(index, X: np.ndarray, ids: np.ndarray, metric: int,
              rng: np.random.Generator) -> float:
    """Set the IVF's nprobe to the smallest power of two reaching CALIBRATION_RECALL on
    queries drawn from X (the album's own faces); returns the recall reached."""
    faiss = _faiss()
    queries = X[rng.choice(len(X), min(len(X), CALIBRATION_QUERIES), replace=False)]
    exact = ids[exact_search(X, queries, RECALL_K, metric)]
    ivf = faiss.extract_index_ivf(index)
    nprobe, r = 1, 0.0
    while nprobe <= ivf.nlist:
        ivf.nprobe = nprobe
        r = recall_at_k(index.search(queries, RECALL_K)[1], exact)
        if r >= CALIBRATION_RECALL:
            break
        nprobe *= 2
    ivf.nprobe = min(nprobe, ivf.nlist)
    return r


def exact_search(X: np.ndarray, queries: np.ndarray, k: int, metric: int) -> np.ndarray:
    """Row numbers of X of the k exact nearest neighbours of each query (ground truth)."""
    faiss = _faiss()
    flat = faiss.IndexFlatIP(X.shape[1]) if metric == faiss.METRIC_INNER_PRODUCT \
        else faiss.IndexFlatL2(X.shape[1])
    flat.add(X)
    return flat.search(queries, k)[1]


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact k neighbours that were found (the standard recall@k)."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k]) & set(e)) / k for f, e in zip(found, exact)]))


def index_ids(index) -> np.ndarray:
    """The ids an index holds (IDMap over flat, or an IVF's lists)."""
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)


def _faiss():
    import faiss

    return faiss
