"""Warp album faces into the FER2013 framing the expression model was trained on.

FER2013 faces are tight 48x48 gray crops with a characteristic framing (eyes at ~37% height,
chin at the bottom edge). A plain detector-box crop frames faces differently (dlib's box cuts
the forehead and varies with pose), which shifts every input the model sees. `align_face`
instead fits a similarity transform (rotation, uniform scale, shift; no shear, so faces keep
their shape and expression) from the face's landmarks to the template = the mean dlib landmarks
of FER+ training faces (faces/template.json, made by scripts/make_template.py).

Only expression-stable points drive the fit: eye contours, the nose, and the upper jaw near the
ears. Mouth, brows and chin move with expressions; fitting to them would partly undo the very
expression (an open mouth would be scaled down to the template's closed one).
Coordinates everywhere: (x, y), pixel centres at integers.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ferindex.errors import ModelError

TEMPLATE_PATH = Path(__file__).with_name("template.json")
TEMPLATE_SIZE = 48
ALIGN_POINTS = np.r_[0:3, 14:17, 27:36, 36:48]  # upper jaw, nose, eyes

# The 5-point scheme of insightface/RetinaFace (subject's right eye first, i.e. image left),
# expressed in the 68-point scheme: eye centres, nose tip, mouth corners. Used to place dlib's
# 68-point predictor inside insightface detections (faces/detect.py).
FIVE_POINT_GROUPS = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))


@lru_cache(maxsize=1)
def _template48() -> np.ndarray:
    if not TEMPLATE_PATH.is_file():
        raise ModelError(f"alignment template missing: {TEMPLATE_PATH} "
                         "(regenerate with scripts/make_template.py)")
    pts = np.asarray(json.loads(TEMPLATE_PATH.read_text())["landmarks"], dtype=np.float32)
    if pts.shape != (68, 2):
        raise ModelError(f"alignment template {TEMPLATE_PATH} has shape {pts.shape}, not (68, 2)")
    return pts


def rescale_points(points: np.ndarray, from_size: float, to_size: float) -> np.ndarray:
    """Map pixel coordinates between square images of two sizes (pixel-centre convention)."""
    return ((np.asarray(points, np.float32) + 0.5) * (to_size / from_size) - 0.5).astype(np.float32)


def template_landmarks(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(68,2) float32 template landmarks in a size x size chip."""
    return rescale_points(_template48(), TEMPLATE_SIZE, size)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """(68,2) -> the (5,2) insightface-style points (eye centres, nose tip, mouth corners)."""
    lm = np.asarray(landmarks68, np.float32)
    return np.stack([lm[list(g)].mean(0) for g in FIVE_POINT_GROUPS]).astype(np.float32)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform src -> dst as a 2x3 matrix (Umeyama 1991).

    Closed form and deterministic (cv2.estimateAffinePartial2D's default RANSAC is neither),
    and every point counts, which suits a few dozen clean landmarks.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = (sig * np.diag(sign)).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N,2) points."""
    p = np.asarray(points, np.float64)
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB or gray uint8 -> gray uint8 (ITU-R 601 luma, as cv2 and Pillow compute it)."""
    import cv2

    img = np.asarray(image, dtype=np.uint8)
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY if img.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    return img


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Gray (size,size) chip of `image` under the 2x3 similarity `m`, borders replicated.

    warpAffine interpolates, it does not average, so shrinking a 400 px face straight to 48 px
    would alias (FER crops were downsampled smoothly). Shrinks therefore warp to an integer
    multiple of `size` at about the photo's own resolution, then average with INTER_AREA.
    """
    import cv2

    gray = to_gray(image)
    factor = max(1, int(1.0 / float(np.hypot(m[0, 0], m[0, 1]))))
    if factor == 1:
        return cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    big = size * factor
    # pixel centres: x_big = factor * (x_small + 0.5) - 0.5
    m_big = m * factor
    m_big[:, 2] += (factor - 1) / 2
    chip = cv2.warpAffine(gray, m_big, (big, big), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)


def alignment_matrix(landmarks68: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 similarity from image coordinates to a size x size FER-framed chip."""
    lm = np.asarray(landmarks68, np.float32)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68,2), got {lm.shape}")
    return estimate_similarity(lm[ALIGN_POINTS], template_landmarks(size)[ALIGN_POINTS])


def align_face_with_landmarks(image: np.ndarray, landmarks68: np.ndarray,
                              size: int = TEMPLATE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Aligned (size,size) gray chip and the face's own landmarks mapped into that chip.

    The mapped landmarks (not the template) should drive the partial-image / region crops: they
    keep this face's mouth opening and eye shape, which is the expression.
    """
    m = alignment_matrix(landmarks68, size)
    return warp(image, m, size), apply_transform(m, landmarks68)


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(size,size) uint8 gray face in the FER2013 framing (see module docstring)."""
    return align_face_with_landmarks(image, landmarks68, size)[0]


def box_matrix(box: tuple[int, int, int, int], size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 transform of the naive crop: the square around the box's centre, side = the box's
    longer side, scaled onto a size x size chip."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    return np.array([[scale, 0, size / 2 - 0.5 - scale * (cx - 0.5)],
                     [0, scale, size / 2 - 0.5 - scale * (cy - 0.5)]])


def box_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int = TEMPLATE_SIZE
             ) -> np.ndarray:
    """Naive baseline: the square around the detector box, resized to (size,size) gray.

    Kept to measure what alignment buys (scripts/eval_yale.py); borders are replicated when the
    square leaves the image. Landmarks map into it with apply_transform(box_matrix(box), ...).
    """
    return warp(image, box_matrix(box, size), size)
