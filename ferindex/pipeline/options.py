"""What a build is asked to do (`BuildOptions`, the CLI flags) and what it did (`BuildReport`,
the `runs.stats` row and `build --json`), apart from the build itself so that the engines and
stages a build hands its options to can import them without importing the build."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENGINES = ("local", "ray")


@dataclass
class BuildOptions:
    """User-facing knobs of a build (the CLI flags)."""

    # Detection settings; None = the index's own (the defaults for a new index). They decide
    # which faces exist, so an index keeps them (pipeline/settings.py).
    detector: str | None = None
    upsample: int | None = None
    model_pack: Path | None = None  # insightface model pack folder
    model: str | None = None  # expression model name or path; None = shipped default
    retry_errors: bool = False
    identity: bool = True  # compute 128-d identity descriptors (people clustering)
    batch_size: int = 32  # photos per committed transaction
    prune: bool = False  # also drop photos whose path is unavailable (see BuildReport.unavailable)
    engine: str = "local"  # where the per-photo stages run: "local" (this process) or "ray"
    address: str | None = None  # Ray cluster to join (engine "ray"); None = a local runtime
    workers: int | None = None  # Ray workers (engine "ray") or local worker processes (1: this
    # process only); None = one per CPU (of the cluster, for Ray)


@dataclass
class BuildReport:
    """What a build did; `stats()` is what `runs.stats` and `build --json` hold."""

    album: str
    index: str
    model_id: str = ""
    seen: int = 0  # image files found by the scan
    new: int = 0  # processed for the first time
    changed: int = 0  # processed again because their content changed
    retried: int = 0  # earlier errors processed again (--retry-errors)
    moved: int = 0  # renamed/moved: path updated, faces kept
    touched: int = 0  # stat changed but content identical
    skipped: int = 0  # unchanged, not read
    deleted: int = 0  # catalogued photos that no longer exist (or unavailable, with prune)
    detected: int = 0  # photos decoded and run through the face detector
    faces_added: int = 0
    faces_removed: int = 0
    reembedded: int = 0  # faces embedded from stored chips (new model)
    recalibrated: int = 0  # faces whose softmax label was re-derived (new calibration, same model)
    knn_labelled: int = 0  # faces given a KNN label (new faces, or all after a model change)
    errors: list[dict] = field(default_factory=list)  # new failures: {"path", "reason"}
    known_errors: list[dict] = field(default_factory=list)  # unchanged earlier failures
    scan_problems: list[dict] = field(default_factory=list)  # what the scan could not look at
    unavailable: list[dict] = field(default_factory=list)  # catalogued photos kept, unseen
    interrupted: bool = False  # stopped before the end (Ctrl-C, or `failed`)
    failed: str | None = None  # the error that stopped the build
    seconds: float = 0.0
    totals: dict = field(default_factory=dict)  # catalog counts after the build

    def stats(self) -> dict:
        d = asdict(self)
        d["photos_per_s"] = round(self.detected / self.seconds, 3) if self.seconds else None
        d["faces_per_s"] = round(self.faces_added / self.seconds, 3) if self.seconds else None
        return d


ProgressFn = Callable[[BuildReport, int, int, str], None]  # (report, done, to do, current file)
