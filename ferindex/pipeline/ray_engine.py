"""`ferindex build --engine ray`: the per-photo stages on Ray workers, the catalog stays here.

The writer (pipeline/build.py) still scans, decides what needs processing, commits in batches
and holds the write lock; only the pure per-photo work (hash, decode, detect, align, identity,
expression embedding: pipeline/process.py) is shipped. It runs as a Ray Data pipeline: the
tasks become small blocks (shards of the scan), an actor pool of `PhotoWorker`s maps them (each
actor loads its models once), and results stream back to the writer as shards finish, in any
order. So a killed build loses only uncommitted work and the next run resumes like an
in-process one; a bad file is an error record, as in-process.

Ray Data rather than bare tasks: it gives the actor pool, backpressure (the driver never holds
more than a few shards of results) and streaming iteration without hand-written scheduling.
Results are pickled `PhotoResult`s in one binary column: records carry arrays, bytes and nested
vectors that are not tabular.

Ray is optional (`pip install 'ferindex[ray]'`): it is imported only when this engine runs.
Without an address a local runtime is started (and stopped at the end); with one the build
joins that cluster, whose nodes must see the album under the same path and have the same
ferindex and models installed (a worker whose model id differs refuses to embed).
"""
from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Iterator
from dataclasses import asdict

from ferindex.errors import FerindexError
from ferindex.pipeline.options import BuildOptions
from ferindex.pipeline.process import PhotoResult, PhotoTask, PhotoWorker

RAY_MISSING = "--engine ray needs Ray: pip install 'ferindex[ray]'"
SHARDS_PER_WORKER = 4  # enough blocks that a slow shard does not leave workers idle


def import_ray():
    """The ray module, or a FerindexError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 (the pipeline API)
    except ImportError:
        raise FerindexError(RAY_MISSING) from None
    for name in ("ray", "ray.data"):  # progress and plans on stderr would drown the build's own
        logging.getLogger(name).setLevel(logging.WARNING)
    return ray


class _RayPhotoFn:
    """The map_batches callable: one PhotoWorker per actor, models loaded once per actor."""

    def __init__(self, options: BuildOptions, model_id: str) -> None:
        self.worker = PhotoWorker(options, model_id)

    def __call__(self, batch: dict) -> dict:
        tasks = [PhotoTask(str(p), str(r), int(s), int(m), None if d is None else str(d))
                 for p, r, s, m, d in zip(batch["path"], batch["rel"], batch["size"],
                                          batch["mtime_ns"], batch["digest"])]
        return {"result": [pickle.dumps(r, protocol=5) for r in self.worker(tasks)]}


class RayEngine:
    """Callable engine: tasks -> PhotoResults streamed from a Ray actor pool."""

    def __init__(self, options: BuildOptions, model_id: str) -> None:
        self.options = options
        self.model_id = model_id

    def __call__(self, tasks: list[PhotoTask]) -> Iterator[PhotoResult]:
        if not tasks:
            return
        ray = import_ray()
        started = self._connect(ray)
        try:
            yield from self._run(ray, tasks)
        except ray.exceptions.RayError as e:
            raise _user_error(e) from None
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Join the cluster (or start a local runtime); False when Ray was already running in
        this process (a notebook, a test), which is then left running."""
        if ray.is_initialized():
            return False
        address, workers = self.options.address, self.options.workers
        kwargs = dict(include_dashboard=False, log_to_driver=False,
                      logging_level=logging.WARNING)
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            raise FerindexError(f"cannot start or join {where}: {e}") from None
        return True

    def _run(self, ray, tasks: list[PhotoTask]) -> Iterator[PhotoResult]:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        workers = self.options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        shard = max(1, min(self.options.batch_size,
                           math.ceil(len(tasks) / (workers * SHARDS_PER_WORKER))))
        ds = ray.data.from_items([asdict(t) for t in tasks],
                                 override_num_blocks=math.ceil(len(tasks) / shard))
        ds = ds.map_batches(_RayPhotoFn, fn_constructor_args=(self.options, self.model_id),
                            batch_size=shard, batch_format="numpy", num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=min(workers, len(tasks))))
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for blob in batch["result"]:
                yield pickle.loads(blob)


def _user_error(e: BaseException) -> FerindexError:
    """The FerindexError a worker raised (missing model files, a model mismatch), else the
    Ray failure in one line; either way the committed batches are kept."""
    seen = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, FerindexError):
            return FerindexError(str(cause).splitlines()[-1] if str(cause) else type(cause).__name__)
        cause = cause.__cause__ or getattr(cause, "cause", None)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return FerindexError(f"the Ray build failed ({type(e).__name__}: {first}); the batches"
                         " committed so far are kept: run the build again to resume")
