"""Who is this face: dlib's ResNet 128-d face descriptor, for grouping album faces by person.

Identity lets the tool show one person's expressions over time and lets metric learning
separate identity from expression. The descriptor is computed from dlib's own 150x150 chip,
aligned from the 68 landmarks (Euclidean distance < 0.6 means same person in dlib's tests).
Cost is ~70 ms per face on one CPU core, so callers should encode only detected faces; the
faces of one photo go through the network as one batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferindex.faces import dlib_models
from ferindex.faces.landmarks import array_to_shape

DIM = 128


class IdentityEncoder:
    """128-d identity descriptors; `num_jitters` > 1 averages randomly jittered chips
    (slower, slightly more robust)."""

    def __init__(self, num_jitters: int = 1) -> None:
        self.num_jitters = num_jitters
        self._net = dlib_models.face_recognizer()

    def encode(self, rgb: np.ndarray, detections: Sequence) -> np.ndarray:
        """(n,128) float32 descriptors, one per Detection (box + 68 landmarks) of `rgb`."""
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        if img.ndim == 2:
            img = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
        if not len(detections):
            return np.zeros((0, DIM), np.float32)
        import dlib

        shapes = dlib.full_object_detections()
        for det in detections:
            shapes.append(array_to_shape(det.landmarks, det.box))
        return np.asarray(self._net.compute_face_descriptor(img, shapes, self.num_jitters),
                          np.float32).reshape(len(detections), DIM)
