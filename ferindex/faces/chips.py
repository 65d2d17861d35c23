"""Expression parts cut from a face by its landmarks: the PI&DML partial image and DML-Net's
eye / mouth regions.

Partial image, paper 000 eqs 1-2 (0-indexed iBUG points; the extracted equations are garbled,
this is the reading used):
    Eye   = A[min y(36..47) - t1 : max y(36..47) + t1,  x36 - t2 : x45 + t2]
    Nose  = A[y28 : y33,                                 x31 - t1 : x35 + t1]
    Mouth = A[min y(48..67) - t2 : max y(48..67) + t1,   x48 - t2 : x54 + t2]
The paper sets t1 = 25, t2 = 9 pixels on CK+ (640x490, interocular distance ~100 px), so here
they scale with the face: t1 = 0.25 and t2 = 0.09 interocular distances (between eye centres).
Layout of the 60x30 (W x H) partial image, eq 2, chosen so each part keeps roughly its aspect:
    rows  0-14: eyes  resized to 60x15 (both eyes and brows span a wide strip)
    rows 15-29: nose  resized to 20x15 at columns 0-19, mouth resized to 40x15 at columns 20-59
DML-Net regions (paper 004) reuse the eye and mouth boxes, each resized to 24x48 (H x W).
Parts leaving the image are filled by replicating the border.
"""
from __future__ import annotations

import numpy as np

from ferindex.faces.align import template_landmarks, to_gray
from ferindex.faces.landmarks import EYES, LEFT_EYE, MOUTH, RIGHT_EYE, fer_landmarks

__all__ = ["partial_image", "regions", "part_boxes", "fer_landmarks", "template_landmarks",
           "PARTIAL_SHAPE", "REGION_SHAPE"]

PAPER_IOD = 100.0
TAU1 = 25.0 / PAPER_IOD
TAU2 = 9.0 / PAPER_IOD
PARTIAL_SHAPE = (30, 60)  # (H, W)
REGION_SHAPE = (24, 48)  # (H, W) of each DML-Net region

Box = tuple[float, float, float, float]


def part_boxes(landmarks68: np.ndarray) -> dict[str, Box]:
    """{"eyes", "nose", "mouth"}: (x0, y0, x1, y1) boxes of paper 000 eq 1 in image pixels."""
    p = np.asarray(landmarks68, np.float32)
    iod = float(np.linalg.norm(p[RIGHT_EYE].mean(0) - p[LEFT_EYE].mean(0)))
    t1, t2 = TAU1 * iod, TAU2 * iod
    eyes, mouth = p[EYES], p[MOUTH]
    return {
        "eyes": (p[36, 0] - t2, eyes[:, 1].min() - t1, p[45, 0] + t2, eyes[:, 1].max() + t1),
        "nose": (p[31, 0] - t1, p[28, 1], p[35, 0] + t1, p[33, 1]),  # eq 1: y_28, 0-indexed
        "mouth": (p[48, 0] - t2, mouth[:, 1].min() - t2, p[54, 0] + t2, mouth[:, 1].max() + t1),
    }


def _crop(gray: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Cut `box` (whole pixels, border replicated outside the image) and resize it to `shape`
    (H, W); INTER_AREA when shrinking, so parts cut from large photos do not alias."""
    import cv2

    h, w = shape
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = max(int(np.ceil(box[2])), x0 + 1), max(int(np.ceil(box[3])), y0 + 1)
    rows, cols = gray.shape[:2]
    pad = (max(0, -y0), max(0, y1 - rows), max(0, -x0), max(0, x1 - cols))
    if any(pad):
        gray = cv2.copyMakeBorder(gray, *pad, cv2.BORDER_REPLICATE)
    part = gray[y0 + pad[0]:y1 + pad[0], x0 + pad[2]:x1 + pad[2]]
    shrink = part.shape[0] > h and part.shape[1] > w
    return cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def partial_image(gray: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """(30,60) uint8 partial image of paper 000 (layout in the module docstring)."""
    g = to_gray(gray)
    b = part_boxes(landmarks68)
    out = np.empty(PARTIAL_SHAPE, np.uint8)
    out[:15] = _crop(g, b["eyes"], (15, 60))
    out[15:, :20] = _crop(g, b["nose"], (15, 20))
    out[15:, 20:] = _crop(g, b["mouth"], (15, 40))
    return out


def regions(gray: np.ndarray, landmarks68: np.ndarray) -> dict[str, np.ndarray]:
    """{"eyes": (24,48) uint8, "mouth": (24,48) uint8} for paper 004's multi-channel network."""
    g = to_gray(gray)
    b = part_boxes(landmarks68)
    return {name: _crop(g, b[name], REGION_SHAPE) for name in ("eyes", "mouth")}
