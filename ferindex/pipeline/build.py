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
- labelled: every face whose KNN label (K=11, distance-weighted, over the model's reference
  bank plus the user-labelled faces; analysis/album.py) was not computed with the current
  model gets one, stored beside the model's softmax posterior (store/catalog.py);
- a bad file never stops a build: it is recorded with its reason (and not retried while it
  stays unchanged, unless retry_errors).
The FAISS caches are rebuilt from the catalog at the end of the build.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ferindex.config import index_dir as default_index_dir
from ferindex.errors import FerindexError
from ferindex.pipeline.process import (  # noqa: F401 (face_thumbnail, THUMB_SIZE: UI imports)
    EXPRESSION, IDENTITY, IDENTITY_MODEL, THUMB_SIZE, FaceExtractor, PhotoResult, PhotoTask,
    embed_chips, embed_records, face_thumbnail, os_reason, process_photo)
from ferindex.store.catalog import Catalog, PhotoRecord, PhotoRow
from ferindex.store.lock import WriteLock
from ferindex.store.vectors import VectorIndex, read_sidecar

EMBED_BATCH = 256
ENGINES = ("local", "ray")


@dataclass
class BuildOptions:
    """User-facing knobs of a build (the CLI flags)."""

    detector: str = "hog"
    upsample: int = 1
    model_pack: Path | None = None  # insightface model pack folder
    model: str | None = None  # expression model name or path; None = shipped default
    retry_errors: bool = False
    identity: bool = True  # compute 128-d identity descriptors (people clustering)
    batch_size: int = 32  # photos per committed transaction
    engine: str = "local"  # where the per-photo stages run: "local" (this process) or "ray"
    address: str | None = None  # Ray cluster to join (engine "ray"); None = a local runtime
    workers: int | None = None  # Ray workers (engine "ray"); None = one per CPU of the cluster


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
    deleted: int = 0  # catalogued photos that no longer exist
    detected: int = 0  # photos decoded and run through the face detector
    faces_added: int = 0
    faces_removed: int = 0
    reembedded: int = 0  # faces embedded from stored chips (new model)
    knn_labelled: int = 0  # faces given a KNN label (new faces, or all after a model change)
    errors: list[dict] = field(default_factory=list)  # new failures: {"path", "reason"}
    known_errors: list[dict] = field(default_factory=list)  # unchanged earlier failures
    interrupted: bool = False
    seconds: float = 0.0
    totals: dict = field(default_factory=dict)  # catalog counts after the build

    def stats(self) -> dict:
        d = asdict(self)
        d["photos_per_s"] = round(self.detected / self.seconds, 3) if self.seconds else None
        d["faces_per_s"] = round(self.faces_added / self.seconds, 3) if self.seconds else None
        return d


ProgressFn = Callable[[BuildReport, int, int, str], None]  # (report, done, to do, current file)


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
        self.options = options or BuildOptions()
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
            with Catalog.open(self.index_dir, create=True) as cat:
                model_id = self.model.model_id
                self.report.model_id = model_id
                run_id = cat.start_run(model_id)
                if not cat.get_meta("model_id"):  # first build: let queries see its batches
                    self._record_settings(cat)
                try:
                    self._sync(cat)
                    self._reembed(cat)
                    self._label(cat)
                    self._publish(cat)
                except KeyboardInterrupt:
                    self.report.interrupted = True
                    raise
                finally:
                    self.report.seconds = round(time.perf_counter() - t0, 3)
                    self.report.totals = cat.counts()
                    cat.finish_run(run_id, self.report.stats())
        finally:
            lock.release()
        return self.report

    # -- scan and compare ------------------------------------------------------------------
    def _sync(self, cat: Catalog) -> None:
        from ferindex.io.scan import ScanProblem, scan

        rep, opts = self.report, self.options
        known = cat.photo_index()
        exclude = (self.index_dir.name,) if self.index_dir.parent == self.album else ()
        seen: set[str] = set()
        unlisted: list[str] = []  # folders that could not be listed: keep their photos
        todo: list[tuple[Path, str, int, int]] = []
        for item in scan(self.album, exclude_dirs=(".ferindex", *exclude)):
            if isinstance(item, ScanProblem):
                rel = _printable(self._rel(item.path))
                rep.errors.append({"path": rel, "reason": item.reason})
                if item.reason.startswith("cannot list folder"):
                    unlisted.append("" if rel == "." else rel.rstrip("/") + "/")
                continue
            rel = self._rel(item.path)
            if not _storable(rel):
                rep.errors.append({"path": _printable(rel),
                                   "reason": "file name is not valid UTF-8: rename the file"})
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
        gone = {p: r for p, r in known.items()
                if p not in seen and not any(p.startswith(u) for u in unlisted)}
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
        return lambda tasks: (process_photo(self.extractor, t) for t in tasks)

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
            Z, P = embed_chips(model, chips, lms)
            with cat.transaction():
                cat.put_vectors(part, EXPRESSION, model.model_id, Z)
                cat.set_predictions(part, P, [model.classes[int(i)] for i in P.argmax(1)],
                                    model.model_id)
                cat.bump_generation()
            self.report.reembedded += len(part)

    def _label(self, cat: Catalog) -> None:
        """KNN labels for faces that have none computed with the current model."""
        from ferindex.analysis.album import label_faces

        ids = cat.faces_without_knn(self.model.model_id)
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
            if _published(self.index_dir, kind, model_id, generation):
                continue  # nothing changed since the last build wrote it
            ids, X = cat.load_vectors(kind, model_id)
            if len(ids):
                VectorIndex.from_vectors(ids, X, kind=kind, model_id=model_id,
                                         metric=metric).save(self.index_dir, generation)


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


def _published(index_dir: Path, kind: str, model_id: str, generation: int) -> bool:
    side = read_sidecar(index_dir, kind)
    return side is not None and side.generation == generation and side.model_id == model_id


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


