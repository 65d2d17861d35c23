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
# expressed in the 68-point scheme: eye centres, nose tip, mouth corners.
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


def alignment_matrix(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 similarity from image coordinates to a size x size FER-framed chip.

    `landmarks` is (68,2) from dlib, or (5,2) in the insightface order (see FIVE_POINT_GROUPS),
    in which case the fit uses the template's eye centres, nose tip and mouth corners; mouth
    corners then do enter the fit, so 5-point alignment is slightly less expression-neutral.
    """
    lm = np.asarray(landmarks, np.float32)
    target = template_landmarks(size)
    if lm.shape == (68, 2):
        return estimate_similarity(lm[ALIGN_POINTS], target[ALIGN_POINTS])
    if lm.shape == (5, 2):
        return estimate_similarity(lm, five_points(target))
    raise ValueError(f"landmarks must be (68,2) or (5,2), got {lm.shape}")


def align_face_with_landmarks(image: np.ndarray, landmarks: np.ndarray,
                              size: int = TEMPLATE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Aligned (size,size) gray chip and the face's own landmarks mapped into that chip.

    The mapped landmarks (not the template) should drive the partial-image / region crops: they
    keep this face's mouth opening and eye shape, which is the expression.
    """
    import cv2

    m = alignment_matrix(landmarks, size)
    chip = cv2.warpAffine(to_gray(image), m, (size, size), flags=cv2.INTER_AREA
                          if m[0, 0] ** 2 + m[0, 1] ** 2 < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return chip, apply_transform(m, landmarks)


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(size,size) uint8 gray face in the FER2013 framing (see module docstring)."""
    return align_face_with_landmarks(image, landmarks68, size)[0]


def box_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int = TEMPLATE_SIZE
             ) -> np.ndarray:
    """Naive baseline: the square around the detector box, resized to (size,size) gray.

    Kept to measure what alignment buys (scripts/eval_yale.py); borders are replicated when the
    square leaves the image.
    """
    import cv2

    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    m = np.array([[scale, 0, size / 2 - 0.5 - scale * (cx - 0.5)],
                  [0, scale, size / 2 - 0.5 - scale * (cy - 0.5)]])
    return cv2.warpAffine(to_gray(image), m, (size, size), flags=cv2.INTER_AREA
                          if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
