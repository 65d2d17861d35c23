"""The local engine of a build: the per-photo stages on every core, in a process pool.

decode -> detect -> landmarks -> align -> identity is CPU-bound dlib/OpenCV work that holds the
GIL, so threads would not help; each worker process builds its own FaceExtractor (models load
once per worker) and returns PhotoResults without expression vectors: the expression network
runs batched in the writer (build.py `_commit`), which keeps one copy of torch and its threads.
Workers start with "spawn" (a fork of a process that already runs torch's thread pools can
deadlock). At most `2 * workers` photos are in flight, so memory stays flat on any album, and
results are yielded as they finish (the writer commits them in any order).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import TYPE_CHECKING

from ferindex.pipeline.process import FaceExtractor, PhotoResult, PhotoTask, process_photo

if TYPE_CHECKING:
    from ferindex.pipeline.build import BuildOptions

_extractor: FaceExtractor | None = None  # one per worker process


def _init(options: "BuildOptions") -> None:
    global _extractor
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker
    _extractor = FaceExtractor(options)


def _run(task: PhotoTask) -> PhotoResult:
    assert _extractor is not None, "worker not initialised"
    return process_photo(_extractor, task)


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class PoolEngine:
    """tasks -> results on `workers` processes (see the module docstring)."""

    def __init__(self, options: "BuildOptions", workers: int) -> None:
        self.options, self.workers = options, workers

    def __call__(self, tasks: Iterable[PhotoTask]) -> Iterator[PhotoResult]:
        todo = iter(tasks)
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                 initializer=_init, initargs=(self.options,)) as pool:
            running: set[Future] = set()
            while True:
                for task in todo:
                    running.add(pool.submit(_run, task))
                    if len(running) >= 2 * self.workers:
                        break
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
