"""68-point landmarks (iBUG 300-W order) from dlib's shape predictor, for photos and FER crops.

FER2013 crops are 48x48 and tight: no detector box exists for them, and dlib's predictor was
trained on boxes from dlib's own HOG detector at much higher resolution. So FER crops are
upscaled 4x (to 192 px, bicubic), padded by replicating the border (the chin often touches the
crop edge), and given a fixed box equal to the median HOG box measured on 600 random FER training
faces at that scale: centre (24, 26.25), side 45, in 48x48 coordinates (HOG found exactly one face
in 491 of them). The same routine feeds the alignment template (scripts/make_template.py) and
training-time partial images, so album faces and FER faces are landmarked the same way.
"""
from __future__ import annotations

import numpy as np

from ferindex.faces import dlib_models

# Groups of the 68-point scheme, used by alignment and the partial-image chips.
JAW = slice(0, 17)
BROWS = slice(17, 27)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)  # the subject's right eye = left side of the image
LEFT_EYE = slice(42, 48)
EYES = slice(36, 48)
MOUTH = slice(48, 68)

FER_SIZE = 48
FER_UPSCALE = 4
FER_PAD = 32  # pixels of replicated border at the upscaled size
FER_BOX_CENTER = (24.0, 26.25)  # (x, y) in 48x48 coordinates
FER_BOX_SIDE = 45.0


def _rect(box: tuple[float, float, float, float]):
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return dlib.rectangle(x0, y0, x1, y1)


def shape_to_array(shape) -> np.ndarray:
    """dlib full_object_detection -> (68,2) float32 (x, y)."""
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                    dtype=np.float32)


def array_to_shape(landmarks: np.ndarray, box: tuple[float, float, float, float]):
    """(68,2) landmarks + box -> dlib full_object_detection (what dlib's face encoder needs)."""
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in np.asarray(landmarks)]
    return dlib.full_object_detection(_rect(box), pts)


def predict_landmarks(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """68 landmarks of the face in `box` (x0, y0, x1, y1) of a gray or RGB uint8 image."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    return shape_to_array(dlib_models.shape_predictor()(img, _rect(box)))


def fer_landmarks(crops48: np.ndarray) -> np.ndarray:
    """(N,48,48) uint8 FER-style crops -> (N,68,2) float32 landmarks in 48x48 coordinates.

    Blank crops (all zero: FER rows without pixels) get all-zero landmarks.
    """
    import cv2

    crops = np.asarray(crops48, dtype=np.uint8)
    if crops.ndim != 3 or crops.shape[1:] != (FER_SIZE, FER_SIZE):
        raise ValueError(f"expected (N,48,48) uint8 crops, got {crops.shape}")
    k, pad = FER_UPSCALE, FER_PAD
    cx, cy = FER_BOX_CENTER
    half = FER_BOX_SIDE / 2
    box = tuple(v * k + pad for v in (cx - half, cy - half, cx + half, cy + half))
    out = np.zeros((len(crops), 68, 2), dtype=np.float32)
    for i, crop in enumerate(crops):
        if not crop.any():
            continue
        big = cv2.resize(crop, (FER_SIZE * k, FER_SIZE * k), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        # dlib's pixel centres are integers; map back so (0,0) is the first 48x48 pixel centre.
        out[i] = (predict_landmarks(big, box) - pad + 0.5) / k - 0.5
    return out
