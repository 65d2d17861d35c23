"""Is this HOG candidate a face? dlib's MMOD CNN, run on a small crop around the candidate.

HOG + linear SVM fires on face-like gradients: a mission patch on a suit, a dark bokeh disc,
a logo. dlib's MMOD CNN is far more specific, but on a whole photo it costs seconds per photo
on a CPU. On a fixed 160x160 crop (the candidate box, doubled, scaled so the face is 80 px:
the CNN's window) it costs tens of milliseconds, and only candidates whose HOG score is below
`verify_below` are checked: on the shared labelled photos every candidate above 1.0 is a face,
and the false faces seen (the astronaut's patch: 0.12) score low. Measured with
scripts/eval_detection.py (README, "Faces: detection and alignment").
"""
from __future__ import annotations

import numpy as np

from ferindex.faces import dlib_models

CROP = 160  # crop side in pixels; the candidate box becomes the central 80 px
CENTER_IOU = 0.3  # a CNN face this close to the crop's centre is the candidate
VERIFY_BELOW = 1.0  # HOG scores at or above this are trusted without the CNN


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_crop(rgb: np.ndarray, box: tuple[float, float, float, float], size: int = CROP
             ) -> np.ndarray:
    """(size, size, 3) crop centred on `box`, twice its longer side, black outside the photo."""
    import cv2

    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    k = size / (2 * half)
    m = np.float32([[k, 0, -(cx - half) * k], [0, k, -(cy - half) * k]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (size, size), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT)


class FaceVerifier:
    """`score(rgb, box)`: the MMOD CNN's confidence for a face at the candidate, or -1 when
    it finds none there (its own threshold is 0, so a face means a score >= 0)."""

    def __init__(self, crop: int = CROP) -> None:
        self.crop = crop
        self._cnn = dlib_models.cnn_detector()

    def score(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> float:
        c = self.crop
        centre = (c / 4, c / 4, 3 * c / 4, 3 * c / 4)
        best = -1.0
        for d in self._cnn(box_crop(rgb, box, c), 0):
            r = d.rect
            if _iou((r.left(), r.top(), r.right(), r.bottom()), centre) >= CENTER_IOU:
                best = max(best, float(d.confidence))
        return best
