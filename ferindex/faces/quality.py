"""How much a detected face can be trusted for analysis: size, sharpness, pose, confidence.

A face can be real and still useless for expressions or identity: 20 px wide, motion-blurred,
seen in profile. Each face gets the four measures below and their combination `quality` in
[0, 1]: the weakest of four ramps (each 0 at its bad end, 1 when the measure is comfortably
good), so one bad measure is enough to hold a face back. Stored in the catalog. Analysis (summaries, sub-classes, people, best shots) skips faces whose quality is
below QUALITY_FLOOR; search and `find` still see them (a user asked for them by example).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferindex.faces.landmarks import LEFT_EYE, RIGHT_EYE

QUALITY_FLOOR = 0.25  # analysis skips faces below this (documented in the README)
# (bad, good) ends of each ramp
SIZE_RAMP = (24.0, 64.0)  # box side in pixels: the aligned chip is 48 px
SHARPNESS_RAMP = (5.0, 40.0)  # variance of the Laplacian of the 48 px aligned chip
YAW_RAMP = (75.0, 35.0)  # degrees from frontal (larger is worse)
CONFIDENCE_RAMP = (-0.5, 0.5)  # detector score, or the verifier's when it checked the face


@dataclass
class FaceQuality:
    """The measures of one face; `value` is their combination in [0, 1]."""

    size: float
    sharpness: float
    yaw: float
    confidence: float
    value: float


def _ramp(x: float, bad: float, good: float) -> float:
    return float(np.clip((x - bad) / (good - bad), 0.0, 1.0))


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned gray chip: low for blurred or flat faces."""
    import cv2

    return float(cv2.Laplacian(np.asarray(chip, np.float32), cv2.CV_32F).var())


def yaw_degrees(landmarks68: np.ndarray) -> float:
    """Head turn estimated from where the nose tip lies between the outer eye corners:
    0 when centred (frontal), 90 when it reaches a corner (profile)."""
    lm = np.asarray(landmarks68, np.float32)
    right, left = lm[RIGHT_EYE][0], lm[LEFT_EYE][3]  # outer corners (points 36 and 45)
    axis = left - right
    width = float(np.linalg.norm(axis))
    if width < 1e-6:
        return 90.0
    t = float(np.dot(lm[30] - right, axis) / width ** 2)  # 0.5 = nose midway
    return float(min(abs(t - 0.5) * 2, 1.0) * 90.0)


def face_quality(box: tuple[int, int, int, int], landmarks68: np.ndarray, chip: np.ndarray,
                 confidence: float) -> FaceQuality:
    side = float(min(box[2] - box[0], box[3] - box[1]))
    sharp = sharpness(chip)
    yaw = yaw_degrees(landmarks68)
    value = min(_ramp(side, *SIZE_RAMP), _ramp(sharp, *SHARPNESS_RAMP), _ramp(yaw, *YAW_RAMP),
                _ramp(confidence, *CONFIDENCE_RAMP))
    return FaceQuality(side, sharp, yaw, float(confidence), value)
