"""The per-photo stages of a build: hash -> decode -> detect -> align -> identity -> embed.

Everything here is a function of its input (a photo file and the build options) and touches no
catalog, so the same code runs in the build's own process, in a process pool or on Ray workers
(pipeline/ray_engine.py). `PhotoWorker` is the picklable unit such an engine ships: built from
the options alone, it loads its models on first use in whatever process it lands in. The
catalog writer (pipeline/build.py) decides which files need these stages and commits their
results.
"""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferindex.errors import BadImageError, FerindexError
from ferindex.pipeline.options import BuildOptions
from ferindex.store.catalog import FaceRecord, PhotoRecord, Predictions

EXPRESSION = "expression"
IDENTITY = "identity"
IDENTITY_MODEL = "dlib-resnet-v1"
THUMB_SIZE = 96


@dataclass(frozen=True)
class PhotoTask:
    """A file the writer wants processed. `digest` None: hash it here (the writer only hashes
    first when the hash decides whether to process at all, i.e. a changed or possibly moved
    file)."""

    path: str  # absolute, readable where the task runs
    rel: str  # path relative to the album: the catalog key
    size: int
    mtime_ns: int
    digest: str | None = None


@dataclass
class PhotoResult:
    """A processed photo and whether it reached the face detector (the build's `detected`)."""

    record: PhotoRecord
    detected: bool


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
        from ferindex.faces.quality import face_quality
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
            checked = d.verify_score
            q = face_quality(d.box, d.landmarks, chip, d.score if checked is None else checked)
            face = FaceRecord(box=tuple(int(v) for v in d.box), score=float(d.score),
                              landmarks=np.asarray(d.landmarks, np.float32), chip=chip,
                              chip_landmarks=chip_lm, thumb=face_thumbnail(rgb, d.box),
                              verify_score=checked, sharpness=q.sharpness, yaw=q.yaw,
                              quality=q.value)
            if ident is not None:
                face.vectors[(IDENTITY, IDENTITY_MODEL)] = ident[i]
            rec.faces.append(face)
        return rec


def process_photo(extractor: FaceExtractor, task: PhotoTask) -> PhotoResult:
    """Hash (if the writer did not), decode, detect, align, identity for one file.

    Never raises for a bad file: the failure becomes an error record with its reason. Raises
    FerindexError for what would fail every photo the same way (missing detector/model files).
    """
    from ferindex.io.scan import content_hash

    before = extractor.detections
    digest = task.digest
    try:
        if digest is None:
            digest = content_hash(Path(task.path))
        rec = extractor.photo(Path(task.path), task.rel, task.size, task.mtime_ns, digest)
    except OSError as e:  # while hashing, or a file that vanished before decoding
        rec = PhotoRecord(task.rel, task.size, task.mtime_ns, digest, "error",
                          error=os_reason(e))
    except BadImageError as e:
        rec = PhotoRecord(task.rel, task.size, task.mtime_ns, digest, "error", error=e.reason)
    except FerindexError:
        raise
    except (Exception, MemoryError) as e:  # a bad file must not stop the build
        rec = PhotoRecord(task.rel, task.size, task.mtime_ns, digest, "error",
                          error=f"{type(e).__name__}: {e}")
    return PhotoResult(rec, extractor.detections > before)


def os_reason(e: OSError) -> str:
    """A short reason for a file that could not be read."""
    if isinstance(e, FileNotFoundError):
        return "vanished during the build"
    if isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or f"{type(e).__name__}: {e}"


def embed_chips(model, chips: np.ndarray, landmarks: np.ndarray | None
                ) -> tuple[np.ndarray, Predictions]:
    """(expression vectors, softmax as the catalog stores it) of aligned chips, in one model
    call: the raw softmax is kept beside the corrected one (see Predictions)."""
    from ferindex.analysis.album import predictions

    if landmarks is not None and landmarks.shape[1:] != (68, 2):
        landmarks = None  # 5-point (insightface) faces: the model computes its own landmarks
    Z, raw = model.embed_and_proba(chips, landmarks, calibrated=False)
    return Z, predictions(model, raw)


def embed_records(model, records: Iterable[PhotoRecord]) -> None:
    """Expression vectors + posteriors for the faces of `records` that lack a vector of
    `model` (a distributed engine embeds on its workers; the writer embeds the rest)."""
    key = (EXPRESSION, model.model_id)
    faces = [f for r in records for f in r.faces if key not in f.vectors]
    if not faces:
        return
    Z, pred = embed_chips(model, np.stack([f.chip for f in faces]),
                          np.stack([f.chip_landmarks for f in faces]))
    for f, z, raw, p, label in zip(faces, Z, pred.raw, pred.probs, pred.labels):
        f.vectors[key] = z
        f.probs_raw, f.probs, f.label = raw, p, label
        f.probs_model, f.probs_labeller = pred.model_id, pred.labeller


class PhotoWorker:
    """All per-photo stages, expression embedding included, for a batch of tasks.

    Picklable: it carries only the options, and loads the detector, identity encoder and
    expression model lazily in the process it runs in (a Ray actor, a pool worker). The model
    it loads must be the one the writer expects (`model_id`), or its vectors would be filed
    under another model: a mismatch (e.g. different ferindex versions on a cluster) is an error.
    """

    def __init__(self, options: BuildOptions, model_id: str) -> None:
        self.options = options
        self.model_id = model_id
        self._extractor: FaceExtractor | None = None
        self._model = None

    def __getstate__(self) -> dict:
        return {"options": self.options, "model_id": self.model_id}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["options"], state["model_id"])

    @property
    def model(self):
        if self._model is None:
            from ferindex.embed import load_model

            model = load_model(self.options.model)
            if model.model_id != self.model_id:
                raise FerindexError(
                    f"worker loaded expression model {model.model_id}, the build uses"
                    f" {self.model_id}: install the same ferindex and models on every node")
            self._model = model
        return self._model

    def __call__(self, tasks: Iterable[PhotoTask]) -> list[PhotoResult]:
        if self._extractor is None:
            self._extractor = FaceExtractor(self.options)
        results = [process_photo(self._extractor, t) for t in tasks]
        embed_records(self.model, [r.record for r in results])
        return results
