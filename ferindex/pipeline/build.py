"""`ferindex build`: scan -> decode -> detect -> align -> embed -> store, incrementally.

Guarantees (DESIGN §4):
- one writer: the index's WriteLock is held for the whole build;
- crash safety: photos are committed in batches, each batch (photos, faces, vectors and the
  generation bump) in one SQLite transaction, so SIGKILL or Ctrl-C loses at most the batch in
  flight and the next run resumes where it stopped;
- incremental: a file whose (path, size, mtime_ns) is unchanged is skipped without being read;
  a changed stat leads to hashing: same hash -> only the stat is updated, a hash equal to a
  catalogued photo whose path has disappeared -> a move (path updated, faces kept, nothing
  re-detected), otherwise the photo is processed again. Photos that vanished lose their faces.
  Faces lacking a vector of the current model (a new model) are embedded from stored chips;
  faces whose softmax the model card now corrects differently (a new calibration of the same
  weights) get it re-derived from the raw softmax stored beside it;
- labelled: every face whose KNN label (K=11, distance-weighted, over the model's reference
  bank plus the user-labelled faces; analysis/album.py) was not computed with the current
  model gets one, stored beside the model's softmax posterior (store/catalog.py);
- a bad file never stops a build: it is recorded with its reason (and not retried while it
  stays unchanged, unless retry_errors).
The FAISS caches are rebuilt from the catalog at the end of the build.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ferindex.config import index_dir as default_index_dir
from ferindex.errors import FerindexError
from ferindex.pipeline.options import ENGINES, BuildOptions, BuildReport, ProgressFn
from ferindex.pipeline.process import (
    EXPRESSION, IDENTITY, IDENTITY_MODEL, FaceExtractor, PhotoResult, PhotoTask, embed_chips,
    embed_records, os_reason, process_photo)
from ferindex.pipeline.pool import PoolEngine, default_workers
from ferindex.store.catalog import Catalog, PhotoRecord, PhotoRow
from ferindex.store.lock import WriteLock
from ferindex.pipeline.settings import resolve_settings
from ferindex.store.vectors import fresh_sidecar, refreshed_index, remove_stale_tmp

EMBED_BATCH = 256


Engine = Callable[[list[PhotoTask]], Iterator[PhotoResult]]  # tasks -> results, any order


class Builder:
    """One build of one album into one index (holds the write lock while it runs)."""

    def __init__(self, album: str | Path, index: str | Path | None = None,
                 options: BuildOptions | None = None, *, model=None, detector=None,
                 identity_encoder=None, progress: ProgressFn | None = None) -> None:
        self.album = Path(album).absolute()
        if not self.album.is_dir():
            raise FerindexError(f"{album}: not a folder")
        self.index_dir = Path(index).absolute() if index else default_index_dir(self.album)
        self.options = replace(options) if options else BuildOptions()  # settings get resolved
        if self.options.engine not in ENGINES:
            raise FerindexError(f"unknown engine {self.options.engine!r}; expected one of"
                                f" {', '.join(ENGINES)}")
        if self.options.engine == "ray":
            from ferindex.pipeline.ray_engine import import_ray

            import_ray()  # missing Ray: say so before taking the lock and scanning
            if detector or identity_encoder:
                raise ValueError("detector/identity objects are for in-process builds only")
        self._model = model
        self.extractor = FaceExtractor(self.options, detector, identity_encoder)
        self._injected = detector is not None or identity_encoder is not None  # in-process only
        self.progress = progress
        self.report = BuildReport(album=str(self.album), index=str(self.index_dir))

    @property
    def model(self):
        if self._model is None:
            from ferindex.embed import load_model

            self._model = load_model(self.options.model)
        return self._model

    def run(self) -> BuildReport:
        t0 = time.perf_counter()
        lock = WriteLock(self.index_dir).acquire()
        try:
            remove_stale_tmp(self.index_dir)
            with Catalog.open(self.index_dir, create=True) as cat:
                resolve_settings(cat, self.options)
                model_id = self.model.model_id
                self.report.model_id = model_id
                run_id = cat.start_run(model_id)
                if not cat.get_meta("model_id"):  # first build: let queries see its batches
                    self._record_settings(cat)
                try:
                    self._sync(cat)
                    self._reembed(cat)
                    self._recalibrate(cat)
                    self._label(cat)
                    self._publish(cat)
                except BaseException as e:
                    self.report.interrupted = True
                    if not isinstance(e, KeyboardInterrupt):
                        self.report.failed = str(e) or type(e).__name__
                    raise
                finally:
                    self.report.seconds = round(time.perf_counter() - t0, 3)
                    self._finish_run(cat, run_id)
        finally:
            lock.release()
        return self.report

    def _finish_run(self, cat: Catalog, run_id: int) -> None:
        """Record the outcome in `runs`; when even that fails (disk full, damaged catalog) the
        run stays unfinished, which `info` shows as killed, and the first error is the one
        reported."""
        try:
            self.report.totals = cat.counts()
            cat.finish_run(run_id, self.report.stats())
        except sqlite3.Error:
            if self.report.failed is None:
                raise

    # -- scan and compare ------------------------------------------------------------------
    def _sync(self, cat: Catalog) -> None:
        from ferindex.io.scan import ScanProblem, scan

        rep, opts = self.report, self.options
        known = cat.photo_index()
        exclude = (self.index_dir.name,) if self.index_dir.parent == self.album else ()
        seen: set[str] = set()
        blocked: list[str] = []  # paths the scan could not look at: what lies there is kept
        todo: list[tuple[Path, str, int, int]] = []
        for item in scan(self.album, exclude_dirs=(".ferindex", *exclude)):
            if isinstance(item, ScanProblem):
                rel = self._rel(item.path)
                rep.scan_problems.append({"path": _printable(rel), "reason": item.reason})
                if item.unavailable:
                    blocked.append(rel)
                continue
            rel = self._rel(item.path)
            if not _storable(rel):
                rep.scan_problems.append({"path": _printable(rel), "reason":
                                          "file name is not valid UTF-8: rename the file"})
                continue
            rep.seen += 1
            seen.add(rel)
            row = known.get(rel)
            if row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns:
                if row.status != "error":
                    rep.skipped += 1
                    continue
                if not opts.retry_errors:
                    rep.known_errors.append({"path": rel, "reason": row.error or "unknown"})
                    continue
            todo.append((item.path, rel, item.size, item.mtime_ns))
        gone = {p: r for p, r in known.items() if p not in seen}
        for path in [p for p in gone if _under_any(p, blocked)]:
            if not opts.prune:  # unavailable is not deleted: an unmounted drive comes back
                del gone[path]
                rep.unavailable.append({"path": path, "reason": _blocked_reason(
                    path, blocked, rep.scan_problems)})
        self._process(cat, todo, known, gone)
        if gone:
            with cat.transaction():
                rep.faces_removed += cat.face_count([r.id for r in gone.values()])
                rep.deleted += cat.delete_photos(r.id for r in gone.values())
                cat.bump_generation()

    def _rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.album).as_posix()
        except ValueError:
            return str(path)

    def _process(self, cat: Catalog, todo: list[tuple[Path, str, int, int]],
                 known: dict[str, PhotoRow], gone: dict[str, PhotoRow]) -> None:
        """Classify (touched / moved / to process), run the per-photo stages on the engine and
        commit every `batch_size` photos as their results arrive (in any order)."""
        from ferindex.io.scan import content_hash

        rep = self.report
        gone_by_hash: dict[str, PhotoRow] = {}
        for r in gone.values():
            if r.hash and r.status != "error":
                gone_by_hash.setdefault(r.hash, r)
        batch = _Batch()
        tasks: list[PhotoTask] = []
        unhashed: set[str] = set()  # new files the engine hashes: "new" once they could be read
        done = 0

        def step(rel: str) -> None:
            nonlocal batch, done
            done += 1
            if batch.size >= self.options.batch_size:
                self._commit(cat, batch)
                batch = _Batch()
            if self.progress:
                self.progress(rep, done, len(todo), rel)

        for path, rel, size, mtime_ns in todo:
            row = known.get(rel)
            if row is None and not gone_by_hash:  # new, and cannot be a move: hashed by a worker
                unhashed.add(rel)
                tasks.append(PhotoTask(str(path), rel, size, mtime_ns))
                continue
            try:
                digest = content_hash(path)
            except OSError as e:
                if row is not None and row.status != "error" and not self.options.prune:
                    rep.unavailable.append({"path": rel, "reason": os_reason(e)})  # kept as is
                else:
                    batch.records.append(self._failed(PhotoRecord(
                        rel, size, mtime_ns, None, "error", error=os_reason(e))))
            else:
                if row is not None and row.hash == digest and row.status != "error":
                    batch.restats.append((row, rel, size, mtime_ns))
                    rep.touched += 1
                elif digest in gone_by_hash:
                    src = gone_by_hash.pop(digest)
                    del gone[src.path]
                    if row is not None:
                        batch.replaced.append(row.id)
                    batch.restats.append((src, rel, size, mtime_ns))
                    rep.moved += 1
                else:
                    if row is None:
                        rep.new += 1
                    elif row.status == "error" and row.hash == digest:
                        rep.retried += 1
                    else:
                        rep.changed += 1
                    tasks.append(PhotoTask(str(path), rel, size, mtime_ns, digest))
                    continue
            step(rel)
        for result in self._engine()(tasks):
            rep.new += result.record.path in unhashed and result.record.hash is not None
            rep.detected += result.detected
            batch.records.append(self._failed(result.record))
            step(result.record.path)
        self._commit(cat, batch)
        if self.progress and todo:
            self.progress(rep, done, len(todo), "")

    def _engine(self) -> Engine:
        """Where the per-photo stages run: in this process, or on Ray workers."""
        if self.options.engine == "ray":
            from ferindex.pipeline.ray_engine import RayEngine

            return RayEngine(self.options, self.model.model_id)
        workers = self.options.workers or default_workers()
        return lambda tasks: (
            PoolEngine(self.options, workers)(tasks) if workers > 1 and len(tasks) > workers
            and not self._injected else (process_photo(self.extractor, t) for t in tasks))

    def _failed(self, rec: PhotoRecord) -> PhotoRecord:
        """Report `rec` if it is an error record; returns it."""
        if rec.status == "error":
            self.report.errors.append({"path": rec.path, "reason": rec.error})
        return rec

    def _commit(self, cat: Catalog, batch: _Batch) -> None:
        if not batch.size:
            return
        embed_records(self.model, batch.records)  # faces a remote engine did not embed
        with cat.transaction():
            self.report.faces_removed += (cat.face_count(batch.replaced)
                                          + cat.face_count_at([r.path for r in batch.records]))
            cat.delete_photos(batch.replaced)
            for row, rel, size, mtime_ns in batch.restats:
                cat.update_stat(row.id, rel, size, mtime_ns)
            for rec in batch.records:
                cat.add_photo(rec)
                self.report.faces_added += len(rec.faces)
            cat.bump_generation()

    # -- model change and caches -------------------------------------------------------------
    def _reembed(self, cat: Catalog) -> None:
        """Faces without a vector of the current model get one from their stored chip."""
        model = self.model
        ids = cat.faces_without_vector(EXPRESSION, model.model_id)
        for s in range(0, len(ids), EMBED_BATCH):
            part = ids[s:s + EMBED_BATCH]
            chips, lms = cat.chips(part), cat.chip_landmarks(part)
            Z, pred = embed_chips(model, chips, lms)
            with cat.transaction():
                cat.put_vectors(part, EXPRESSION, model.model_id, Z)
                cat.set_predictions(part, pred)
                cat.bump_generation()
            self.report.reembedded += len(part)

    def _recalibrate(self, cat: Catalog) -> None:
        """Faces whose shown softmax the current model made under another calibration of its card
        get it re-derived from their stored raw softmax, with no network pass. Faces stored
        before the catalog kept the raw softmax (schema v6) have nothing to re-derive from: they
        keep theirs until a new model embeds them again."""
        from ferindex.analysis.album import labeller_id, predictions

        model, n = self.model, len(self.model.classes)
        ids = cat.faces_with_stale_softmax(model.model_id, labeller_id(model, "softmax"), n)
        for s in range(0, len(ids), EMBED_BATCH):
            part = ids[s:s + EMBED_BATCH]
            raw = cat.stored_posteriors(part, model.model_id, n, raw=True)
            ok = ~np.isnan(raw).any(axis=1)  # a damaged raw softmax: keep what is shown
            if not ok.any():
                continue
            with cat.transaction():
                cat.set_predictions([f for f, k in zip(part, ok) if k], predictions(model, raw[ok]))
            self.report.recalibrated += int(ok.sum())

    def _label(self, cat: Catalog) -> None:
        """KNN labels for faces that have none computed with the current model and calibration."""
        from ferindex.analysis.album import label_faces, labeller_id

        ids = cat.faces_without_knn(self.model.model_id, labeller_id(self.model))
        if ids:
            self.report.knn_labelled += label_faces(cat, self.model, ids)

    def _record_settings(self, cat: Catalog) -> None:
        """The model and detector settings queries must reuse, and the album root."""
        model, opts = self.model, self.options
        ref = opts.model or ""
        if ref and Path(ref).exists():
            ref = str(Path(ref).resolve())
        with cat.transaction():
            for k, v in {"model_id": model.model_id, "model_ref": ref, "metric": model.metric,
                         "detector": opts.detector, "upsample": str(opts.upsample),
                         "model_pack": str(opts.model_pack or ""), "album": str(self.album)
                         }.items():
                cat.set_meta(k, v)

    def _publish(self, cat: Catalog) -> None:
        """Record the settings, then write the FAISS caches for this generation."""
        model = self.model
        self._record_settings(cat)
        generation = cat.generation
        for kind, model_id, metric in ((EXPRESSION, model.model_id, model.metric),
                                       (IDENTITY, IDENTITY_MODEL, "euclidean")):
            if fresh_sidecar(cat, self.index_dir, kind, model_id=model_id, metric=metric):
                continue  # nothing changed since the last build wrote it
            vi = refreshed_index(cat, self.index_dir, kind=kind, model_id=model_id,
                                 metric=metric)  # added faces appended, removed ones dropped
            if vi is not None:
                vi.save(self.index_dir, generation, cat.catalog_id)


@dataclass
class _Batch:
    """What the next transaction commits: processed photos, new stats of unchanged content
    (touched or moved photos) and rows whose path a moved photo takes over."""

    records: list[PhotoRecord] = field(default_factory=list)
    restats: list[tuple[PhotoRow, str, int, int]] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.records) + len(self.restats)


def _under(path: str, top: str) -> bool:
    """True when the album path `path` is `top` or lies below it ("." is the album root)."""
    return top == "." or path == top or path.startswith(top.rstrip("/") + "/")


def _under_any(path: str, tops: list[str]) -> bool:
    return any(_under(path, t) for t in tops)


def _blocked_reason(path: str, blocked: list[str], problems: list[dict]) -> str:
    """Why a catalogued photo was not seen: the scan problem of the path that hides it."""
    top = max((t for t in blocked if _under(path, t)), key=len)
    reason = next((p["reason"] for p in problems if p["path"] == _printable(top)), "unavailable")
    where = "" if top == path else f"{top}: "
    return f"{where}{reason}; kept until it is back (or `ferindex build --prune`)"


def _storable(text: str) -> bool:
    """False for names with undecodable bytes (surrogate escapes) that SQLite cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def build_album(album: str | Path, index: str | Path | None = None,
                options: BuildOptions | None = None, **kwargs) -> BuildReport:
    """Build or update the index of `album`; see Builder for the keyword arguments."""
    return Builder(album, index, options, **kwargs).run()


