"""The local engine of a build: the per-photo stages on every core, in a process pool.

decode -> detect -> landmarks -> align -> identity is CPU-bound dlib/OpenCV work that holds the
GIL, so threads would not help; each worker process builds its own FaceExtractor (models load
once per worker) and returns PhotoResults without expression vectors: the expression network
runs batched in the writer (build.py `_commit`), which keeps one copy of torch and its threads.
Workers are spawned, not forked: a fork of a process whose OpenCV thread pool has run hangs in
the child's first OpenCV call (measured: the writer aligns and embeds with OpenCV and torch
threads), and a forked child would also keep the writer's flock alive after the writer was
killed. As with any spawned pool, a script that calls build_album must guard its entry point
(`if __name__ == "__main__":`); `ferindex build` does. At most `2 * workers` photos are in
flight, so memory stays flat on any album, and results are yielded as they finish (the writer
commits them in any order).
A worker whose build was killed (SIGKILL leaves no chance to stop it) exits within a second.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context

from ferindex.pipeline.options import BuildOptions
from ferindex.pipeline.process import FaceExtractor, PhotoResult, PhotoTask, process_photo

_extractor: FaceExtractor | None = None  # one per worker process


def _init(options: "BuildOptions", parent: int) -> None:
    import cv2
    import torch

    global _extractor
    cv2.setNumThreads(1)  # one core per worker (OpenCV, and the identity network's torch)
    torch.set_num_threads(1)
    _extractor = FaceExtractor(options)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once its build process is gone (it would wait for work forever)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


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
                                 initializer=_init, initargs=(self.options, os.getpid())) as pool:
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
