"""Face detection with 68 landmarks per face: dlib HOG (default), dlib MMOD CNN, or insightface.

Detection runs on a copy whose longer side is at most `max_side` (see io.decode.
downscale_for_detection) and boxes are mapped back; landmarks are then predicted on the
full-resolution image, where dlib's shape predictor costs the same but sees more detail.

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
from ferindex.io.decode import downscale_for_detection

DEFAULT_MAX_SIDE = 1600


@dataclass
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, x1/y1 exclusive and clipped to the image;
    detector score (higher = more confident; scales differ between detectors); landmarks
    (68,2) float32 (x, y) in image pixels, not clipped (a chin may leave the frame)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray = field(repr=False)


def _clip_box(box: tuple[float, float, float, float], width: int, height: int
              ) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return (min(max(x0, 0), width), min(max(y0, 0), height),
            min(max(x1, 0), width), min(max(y1, 0), height))


def _finish(rgb: np.ndarray, found: list[tuple[tuple[float, float, float, float], float]],
            scale: float) -> list[Detection]:
    """Map (box-on-small-copy, score) pairs back to `rgb`, add landmarks, sort by score."""
    h, w = rgb.shape[:2]
    out = []
    for (x0, y0, x1, y1), score in found:
        big = tuple((v + 0.5) / scale - 0.5 for v in (x0, y0, x1, y1))
        landmarks = predict_landmarks(rgb, big)
        out.append(Detection(_clip_box((big[0], big[1], big[2] + 1, big[3] + 1), w, h),
                             float(score), landmarks))
    return sorted(out, key=lambda d: -d.score)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim == 2:
        img = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) RGB or (H,W) gray uint8 image, got {img.shape}")
    return img


class HogDetector:
    """dlib HOG + linear SVM: ~20 ms on a 512 px photo, frontal faces of >= ~80 px (40 px with
    upsample=1). `threshold` is dlib's adjust_threshold (0 = dlib's default operating point)."""

    def __init__(self, upsample: int = 1, max_side: int = DEFAULT_MAX_SIDE,
                 threshold: float = 0.0) -> None:
        self.upsample, self.max_side, self.threshold = upsample, max_side, threshold
        self._det = dlib_models.hog_detector()

    def detect(self, image: np.ndarray) -> list[Detection]:
        rgb = _as_rgb(image)
        small, scale = downscale_for_detection(rgb, self.max_side)
        rects, scores, _ = self._det.run(small, self.upsample, self.threshold)
        return _finish(rgb, [((r.left(), r.top(), r.right(), r.bottom()), s)
                             for r, s in zip(rects, scores)], scale)


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
        return HogDetector(upsample=upsample, **kwargs)
    if name == "cnn":
        return CnnDetector(upsample=upsample, **kwargs)
    if name == "insightface":
        return InsightFaceDetector(model_pack, **kwargs)
    raise ValueError(f"unknown detector {name!r}: use 'hog', 'cnn' or 'insightface'")
