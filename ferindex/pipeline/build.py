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

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ferindex.config import index_dir as default_index_dir
from ferindex.errors import BadImageError, FerindexError
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord, PhotoRow
from ferindex.store.lock import WriteLock
from ferindex.store.vectors import VectorIndex, read_sidecar

EXPRESSION = "expression"
IDENTITY = "identity"
IDENTITY_MODEL = "dlib-resnet-v1"
THUMB_SIZE = 96
EMBED_BATCH = 256


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


def taken_at(path: Path) -> str | None:
    """EXIF DateTimeOriginal (or DateTime) as written by the camera, without decoding pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            value = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    except Exception:  # metadata is optional: any unreadable EXIF just means "unknown"
        return None
    return str(value).strip("\x00 ") or None if value else None


def face_thumbnail(rgb: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
    """A small square JPEG around the face (box grown by 25%), for UIs and reports."""
    from PIL import Image

    x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0) * 1.25)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    h, w = rgb.shape[:2]
    a0, b0 = max(cx - side // 2, 0), max(cy - side // 2, 0)
    crop = rgb[b0:min(b0 + side, h), a0:min(a0 + side, w)]
    if crop.size == 0:
        crop = rgb
    buf = io.BytesIO()
    Image.fromarray(crop).resize((THUMB_SIZE, THUMB_SIZE)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


class FaceExtractor:
    """decode -> detect -> align (+ identity) for one photo; heavy models loaded on first use."""

    def __init__(self, options: BuildOptions, detector=None, identity_encoder=None) -> None:
        self.options = options
        self._detector = detector
        self._identity = identity_encoder
        self.detections = 0  # photos decoded and run through the detector

    @property
    def detector(self):
        if self._detector is None:
            from ferindex.faces.detect import make_detector

            o = self.options
            self._detector = make_detector(o.detector, upsample=o.upsample, model_pack=o.model_pack)
        return self._detector

    @property
    def identity(self):
        if self._identity is None:
            from ferindex.faces.identity import IdentityEncoder

            self._identity = IdentityEncoder()
        return self._identity

    def photo(self, path: Path, rel: str, size: int, mtime_ns: int, digest: str) -> PhotoRecord:
        """A PhotoRecord with faces (vectors of the expression model still to be added)."""
        from ferindex.faces.align import align_face_with_landmarks
        from ferindex.io.decode import load_rgb

        rgb = load_rgb(path)
        h, w = rgb.shape[:2]
        self.detections += 1
        dets = sorted(self.detector.detect(rgb), key=lambda d: (d.box[0], d.box[1]))
        rec = PhotoRecord(rel, size, mtime_ns, digest, "ok" if dets else "noface",
                          width=w, height=h, taken_at=taken_at(path))
        ident = self.identity.encode(rgb, dets) if dets and self.options.identity else None
        for i, d in enumerate(dets):
            chip, chip_lm = align_face_with_landmarks(rgb, d.landmarks)
            face = FaceRecord(box=tuple(int(v) for v in d.box), score=float(d.score),
                              landmarks=np.asarray(d.landmarks, np.float32), chip=chip,
                              chip_landmarks=chip_lm, thumb=face_thumbnail(rgb, d.box))
            if ident is not None:
                face.vectors[(IDENTITY, IDENTITY_MODEL)] = ident[i]
            rec.faces.append(face)
        return rec


def _embed_records(model, records: list[PhotoRecord]) -> None:
    """Expression vectors + posteriors for every face of a batch, in one model call."""
    faces = [f for r in records for f in r.faces]
    if not faces:
        return
    Z, P = _embed(model, np.stack([f.chip for f in faces]),
                  np.stack([f.chip_landmarks for f in faces]))
    for f, z, p in zip(faces, Z, P):
        f.vectors[(EXPRESSION, model.model_id)] = z
        f.probs, f.label, f.probs_model = p, model.classes[int(p.argmax())], model.model_id


def _embed(model, chips: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if landmarks is not None and landmarks.shape[1:] != (68, 2):
        landmarks = None  # 5-point (insightface) faces: the model computes its own landmarks
    return model.embed_and_proba(chips, landmarks)


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
        """Hash, classify (touched / moved / to detect) and commit every `batch_size` photos."""
        from ferindex.io.scan import content_hash

        rep = self.report
        gone_by_hash: dict[str, PhotoRow] = {}
        for r in gone.values():
            if r.hash and r.status != "error":
                gone_by_hash.setdefault(r.hash, r)
        records: list[PhotoRecord] = []
        restats: list[tuple[PhotoRow, str, int, int]] = []  # (row, new path, size, mtime)
        replaced: list[int] = []  # rows whose path a moved photo takes over
        done = 0
        for path, rel, size, mtime_ns in todo:
            row = known.get(rel)
            try:
                digest = content_hash(path)
            except OSError as e:
                rec = PhotoRecord(rel, size, mtime_ns, None, "error", error=_os_reason(e))
                rep.errors.append({"path": rel, "reason": rec.error})
                records.append(rec)
            else:
                if row is not None and row.hash == digest and row.status != "error":
                    restats.append((row, rel, size, mtime_ns))
                    rep.touched += 1
                elif digest in gone_by_hash:
                    src = gone_by_hash.pop(digest)
                    del gone[src.path]
                    if row is not None:
                        replaced.append(row.id)
                    restats.append((src, rel, size, mtime_ns))
                    rep.moved += 1
                else:
                    if row is None:
                        rep.new += 1
                    elif row.status == "error" and row.hash == digest:
                        rep.retried += 1
                    else:
                        rep.changed += 1
                    records.append(self._extract(path, rel, size, mtime_ns, digest))
            done += 1
            if len(records) + len(restats) >= self.options.batch_size:
                self._commit(cat, records, restats, replaced)
                records, restats, replaced = [], [], []
            if self.progress:
                self.progress(rep, done, len(todo), rel)
        self._commit(cat, records, restats, replaced)
        if self.progress and todo:
            self.progress(rep, done, len(todo), "")

    def _extract(self, path: Path, rel: str, size: int, mtime_ns: int, digest: str
                 ) -> PhotoRecord:
        """Never raises for a bad file: the failure becomes an error record with its reason."""
        rep = self.report
        try:
            rec = self.extractor.photo(path, rel, size, mtime_ns, digest)
        except BadImageError as e:
            rec = PhotoRecord(rel, size, mtime_ns, digest, "error", error=e.reason)
        except FerindexError:
            raise  # missing detector/model files: every photo would fail the same way
        except (Exception, MemoryError) as e:  # a bad file must not stop the build
            rec = PhotoRecord(rel, size, mtime_ns, digest, "error",
                              error=f"{type(e).__name__}: {e}")
        finally:
            rep.detected = self.extractor.detections
        if rec.status == "error":
            rep.errors.append({"path": rel, "reason": rec.error})
        return rec

    def _commit(self, cat: Catalog, records: list[PhotoRecord],
                restats: list[tuple[PhotoRow, str, int, int]], replaced: list[int]) -> None:
        if not records and not restats:
            return
        _embed_records(self.model, records)
        with cat.transaction():
            cat.delete_photos(replaced)
            for row, rel, size, mtime_ns in restats:
                cat.update_stat(row.id, rel, size, mtime_ns)
            for rec in records:
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
            Z, P = _embed(model, chips, lms)
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


def _os_reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "vanished during the build"
    if isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or f"{type(e).__name__}: {e}"


def build_album(album: str | Path, index: str | Path | None = None,
                options: BuildOptions | None = None, **kwargs) -> BuildReport:
    """Build or update the index of `album`; see Builder for the keyword arguments."""
    return Builder(album, index, options, **kwargs).run()


