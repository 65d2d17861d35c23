"""Face detection with 68 landmarks per face: dlib HOG (default), dlib MMOD CNN, or insightface.

The default, "hog", is HOG with three additions (CheckedDetector), measured with
scripts/eval_detection.py:
- adaptive scale: a photo is resized once so its longer side is `work_side` (1600 px), but never
  enlarged more than 2**upsample: small photos are upsampled (small faces), large ones are not
  (upsampling a 1600 px photo to 3200 px cost 4x the time and found no more faces there);
- verification: candidates with a low HOG score are checked by dlib's MMOD CNN on a crop
  (faces/verify.py), which rejects patches, logos and textures;
- retry: a photo with no face is tried again padded (a face that fills the frame leaves HOG's
  window no margin), then with its contrast equalised (CLAHE: a face half in shadow), then
  turned by 90 degrees either way (a sideways photo without EXIF); every candidate found this
  way is verified. The retry works at RETRY_SIDE (1200 px), so on large photos each variant
  costs about half the first pass.
"hog-plain" is HOG as it was before these (the photo shrunk to `max_side`, then dlib's own
upsampling, no checks): kept to compare against.

Landmarks are predicted on the full-resolution image, where dlib's shape predictor costs the
same but sees more detail.

insightface (optional, never downloads): the user points `model_pack` at a local pack folder
such as ~/.insightface/models/buffalo_l holding a det_*.onnx detector. It returns 5 keypoints
(eye centres, nose tip, mouth corners), not 68. To keep one contract downstream (alignment,
partial images, identity all use 68 points) the 5 points are similarity-fitted to the FER
template's 5 points, the template's detector box (the median dlib HOG box of FER faces, see
faces/landmarks.py) is mapped through that fit, and dlib's 68-point predictor runs in that box:
it then starts from the framing it was trained on.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferindex.errors import ModelError
from ferindex.faces import dlib_models
from ferindex.faces.landmarks import FER_BOX_CENTER, FER_BOX_SIDE, predict_landmarks
from ferindex.faces.verify import VERIFY_BELOW, FaceVerifier
from ferindex.io.decode import downscale_for_detection

DEFAULT_MAX_SIDE = 1600
WORK_SIDE = 1600  # adaptive scale: the longer side HOG works at (see the module docstring)
RETRY_PAD = 0.25  # padding on each side, as a fraction of the longer side, for the retry
RETRY_SIDE = 1200  # the retry's work side: cheaper than the first pass on large photos
# the retry's variants, in order: (quarter turns anticlockwise, contrast equalised)
RETRIES = ((0, False), (0, True), (1, False), (3, False))
DETECTORS = ("hog", "hog-plain", "cnn", "insightface")

Candidate = tuple[tuple[float, float, float, float], float]  # (box in image pixels, score)


@dataclass
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, x1/y1 exclusive and clipped to the image;
    detector score (higher = more confident; scales differ between detectors); landmarks
    (68,2) float32 (x, y) in image pixels, not clipped (a chin may leave the frame)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray = field(repr=False)
    verify_score: float | None = None  # the CNN verifier's confidence, where it checked


def _clip_box(box: tuple[float, float, float, float], width: int, height: int
              ) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return (min(max(x0, 0), width), min(max(y0, 0), height),
            min(max(x1, 0), width), min(max(y1, 0), height))


def _unscale(found: list[Candidate], scale: float) -> list[Candidate]:
    """Boxes found on a copy resized by `scale` -> boxes on the original (pixel centres)."""
    return [(tuple((v + 0.5) / scale - 0.5 for v in box), score) for box, score in found]


def _finish(rgb: np.ndarray, found: list[Candidate], scale: float = 1.0,
            verify_scores: list[float | None] | None = None) -> list[Detection]:
    """Map (box-on-a-copy-scaled-by-`scale`, score) pairs back to `rgb`, add landmarks, sort by
    score."""
    h, w = rgb.shape[:2]
    checks = verify_scores or [None] * len(found)
    out = []
    for (big, score), checked in zip(_unscale(found, scale), checks):
        landmarks = predict_landmarks(rgb, big)
        out.append(Detection(_clip_box((big[0], big[1], big[2] + 1, big[3] + 1), w, h),
                             float(score), landmarks, checked))
    return sorted(out, key=lambda d: -d.score)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim == 2:
        img = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) RGB or (H,W) gray uint8 image, got {img.shape}")
    return img


class HogDetector:
    """dlib HOG + linear SVM: ~20 ms on a 512 px photo, frontal faces of >= ~80 px in the image
    it works on. `threshold` is dlib's adjust_threshold (0 = dlib's default operating point).

    With `work_side` (adaptive scale) the photo is resized once by min(2**upsample,
    work_side / longer side); without it (the former behaviour) it is shrunk to `max_side` and
    then upsampled `upsample` times by dlib."""

    def __init__(self, upsample: int = 1, max_side: int = DEFAULT_MAX_SIDE,
                 threshold: float = 0.0, work_side: int | None = None) -> None:
        self.upsample, self.max_side, self.threshold = upsample, max_side, threshold
        self.work_side = work_side
        self._det = dlib_models.hog_detector()

    def candidates(self, rgb: np.ndarray) -> list[Candidate]:
        """(box, score) in `rgb` pixels, best first, no landmarks."""
        import cv2

        if self.work_side is None:
            small, scale = downscale_for_detection(rgb, self.max_side)
            upsample = self.upsample
        else:
            h, w = rgb.shape[:2]
            scale = min(2.0 ** self.upsample, self.work_side / max(h, w))
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            small = rgb if scale == 1 else cv2.resize(rgb, size, interpolation=interp)
            upsample = 0
        rects, scores, _ = self._det.run(small, upsample, self.threshold)
        found = [((r.left(), r.top(), r.right(), r.bottom()), s) for r, s in zip(rects, scores)]
        return sorted(_unscale(found, scale), key=lambda c: -c[1])

    def detect(self, image: np.ndarray) -> list[Detection]:
        rgb = _as_rgb(image)
        return _finish(rgb, self.candidates(rgb))


def _variant(rgb: np.ndarray, quarter_turns: int, pad: int, equalise: bool) -> np.ndarray:
    """`rgb` turned counter-clockwise by 90 degrees `quarter_turns` times, its lightness
    CLAHE-equalised if asked, then padded with black on every side."""
    import cv2

    img = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    if equalise:
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
        lab[..., 0] = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4)).apply(lab[..., 0])
        img = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)


def _unturn_points(points: np.ndarray, quarter_turns: int, pad: int, shape: tuple[int, int]
                   ) -> np.ndarray:
    """Points (x, y) of the turned and padded image -> points of the original `shape` (h, w)."""
    h, w = shape
    p = np.asarray(points, np.float32) - pad
    x, y = p[:, 0], p[:, 1]
    k = quarter_turns % 4
    if k == 1:  # np.rot90 once: original (x, y) -> (y, w - 1 - x)
        x, y = w - 1 - y, x
    elif k == 2:
        x, y = w - 1 - x, h - 1 - y
    elif k == 3:
        x, y = y, h - 1 - x
    return np.stack([x, y], axis=1)


class CheckedDetector:
    """HOG candidates, CNN-verified below `verify_below`, with a padded, equalised and turned
    retry for photos where nothing was found (see the module docstring)."""

    def __init__(self, hog: HogDetector, verifier: FaceVerifier | None = None,
                 verify_below: float = VERIFY_BELOW, retry: bool = True) -> None:
        self.hog, self.verify_below, self.retry = hog, verify_below, retry
        self.verifier = verifier or FaceVerifier()
        self.retry_hog = HogDetector(hog.upsample, hog.max_side, hog.threshold, RETRY_SIDE)

    def _verified(self, rgb: np.ndarray, found: list[Candidate], below: float
                  ) -> tuple[list[Candidate], list[float | None]]:
        keep, checks = [], []
        for box, score in found:
            checked = self.verifier.score(rgb, box) if score < below else None
            if checked is None or checked >= 0:
                keep.append((box, score))
                checks.append(checked)
        return keep, checks

    def detect(self, image: np.ndarray) -> list[Detection]:
        rgb = _as_rgb(image)
        found, checks = self._verified(rgb, self.hog.candidates(rgb), self.verify_below)
        if found or not self.retry:
            return _finish(rgb, found, verify_scores=checks)
        pad = int(round(RETRY_PAD * max(rgb.shape[:2])))
        for turns, equalise in RETRIES:
            img = _variant(rgb, turns, pad, equalise)
            found, checks = self._verified(img, self.retry_hog.candidates(img), np.inf)
            if found:
                return [self._back(d, turns, pad, rgb.shape[:2])
                        for d in _finish(img, found, verify_scores=checks)]
        return []

    @staticmethod
    def _back(d: Detection, turns: int, pad: int, shape: tuple[int, int]) -> Detection:
        """A detection on the turned, padded image as one on the original photo."""
        h, w = shape
        x0, y0, x1, y1 = d.box
        corners = _unturn_points(np.array([[x0, y0], [x1 - 1, y1 - 1]]), turns, pad, shape)
        lo, hi = corners.min(0), corners.max(0)
        box = _clip_box((lo[0], lo[1], hi[0] + 1, hi[1] + 1), w, h)
        return Detection(box, d.score, _unturn_points(d.landmarks, turns, pad, shape),
                         d.verify_score)


class CnnDetector:
    """dlib MMOD CNN: finds smaller and more turned faces than HOG, but ~20x slower on CPU, so
    its default working size is smaller."""

    def __init__(self, upsample: int = 1, max_side: int = 1024) -> None:
        self.upsample, self.max_side = upsample, max_side
        self._det = dlib_models.cnn_detector()

    def detect(self, image: np.ndarray) -> list[Detection]:
        rgb = _as_rgb(image)
        small, scale = downscale_for_detection(rgb, self.max_side)
        found = [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
                 for d in self._det(small, self.upsample)]
        return _finish(rgb, found, scale)


class InsightFaceDetector:
    """SCRFD/RetinaFace from a local insightface model pack (see module docstring)."""

    def __init__(self, model_pack: str | Path | None, max_side: int = DEFAULT_MAX_SIDE,
                 input_size: int = 640, threshold: float = 0.5) -> None:
        if model_pack is None:
            raise ModelError("the insightface detector needs a local model pack folder, e.g. "
                             "--model-pack ~/.insightface/models/buffalo_l (never downloaded)")
        pack = Path(model_pack).expanduser()
        for module in ("insightface", "onnxruntime"):
            if importlib.util.find_spec(module) is None:
                raise ModelError(f"the insightface detector needs the `{module}` package: "
                                 "install ferindex[insightface]")
        if not pack.is_dir():
            raise ModelError(f"insightface model pack not found: {pack}")
        onnx = sorted(pack.glob("det_*.onnx"))
        if not onnx:
            raise ModelError(f"insightface model pack {pack} has no detector file det_*.onnx")
        from insightface.model_zoo import get_model  # a path to an existing .onnx never downloads

        self._model = get_model(str(onnx[0]), providers=["CPUExecutionProvider"])
        self._model.prepare(ctx_id=-1, input_size=(input_size, input_size), det_thresh=threshold)
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        from ferindex.faces.align import (apply_transform, estimate_similarity, five_points,
                                          template_landmarks)

        rgb = _as_rgb(image)
        small, scale = downscale_for_detection(rgb, self.max_side)
        boxes, kpss = self._model.detect(np.ascontiguousarray(small[..., ::-1]), max_num=0)
        template5 = five_points(template_landmarks(48))
        found = []
        for box, kps in zip(boxes, kpss):
            m = estimate_similarity(template5, kps)  # template (48 px) -> small image
            cx, cy = apply_transform(m, np.array([FER_BOX_CENTER]))[0]
            half = FER_BOX_SIDE / 2 * float(np.hypot(m[0, 0], m[0, 1]))
            found.append(((cx - half, cy - half, cx + half, cy + half), float(box[4])))
        return _finish(rgb, found, scale)


def make_detector(name: str = "hog", upsample: int = 1, model_pack: str | Path | None = None,
                  max_side: int | None = None):
    """A detector with `.detect(rgb) -> list[Detection]` (sorted by score, best first)."""
    kwargs = {} if max_side is None else {"max_side": max_side}
    if name == "hog":
        return CheckedDetector(HogDetector(upsample=upsample, work_side=WORK_SIDE, **kwargs))
    if name == "hog-plain":
        return HogDetector(upsample=upsample, **kwargs)
    if name == "cnn":
        return CnnDetector(upsample=upsample, **kwargs)
    if name == "insightface":
        return InsightFaceDetector(model_pack, **kwargs)
    raise ValueError(f"unknown detector {name!r}: use one of {', '.join(DETECTORS)}")
