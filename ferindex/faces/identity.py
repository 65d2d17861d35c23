"""Who is this face: dlib's ResNet 128-d face descriptor, for grouping album faces by person.

Identity lets the tool show one person's expressions over time and lets metric learning
separate identity from expression. The descriptor is dlib's: its own 150x150 chip, aligned from
the 68 landmarks (Euclidean distance < 0.6 means same person in dlib's tests), through dlib's
face-recognition ResNet. The network runs in PyTorch (`ferindex/nn/dlib_resnet.py` reads dlib's
weights and reproduces dlib's descriptor within 1e-4): dlib's own CPU forward pass took ~140 ms
a face on a 2-core Intel Xeon, PyTorch's 10-16 ms (`scripts/bench_build.py`), and identity had been
over half of a build's time. The faces of one photo go through the network as one batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from ferindex.faces.landmarks import array_to_shape
from ferindex.nn.dlib_resnet import DlibResNet

DIM = 128
CHIP = 150  # dlib's chip: 150x150 px with 25 % padding around the landmark-aligned face
PADDING = 0.25


@lru_cache(maxsize=1)
def _network() -> DlibResNet:
    """dlib's weights, read once per process; float32 (bf16 would move the descriptor)."""
    return DlibResNet().load_dlib().eval().to(memory_format=torch.channels_last)


def dlib_shapes(detections: Sequence):
    """dlib's landmark objects for Detections (box + 68 landmarks), what its chip cutter takes."""
    import dlib

    shapes = dlib.full_object_detections()
    for det in detections:
        shapes.append(array_to_shape(det.landmarks, det.box))
    return shapes


class IdentityEncoder:
    """128-d identity descriptors of detected faces, equal to dlib's `compute_face_descriptor`."""

    def __init__(self) -> None:
        self._net = _network()

    def encode(self, rgb: np.ndarray, detections: Sequence) -> np.ndarray:
        """(n,128) float32 descriptors, one per Detection (box + 68 landmarks) of `rgb`."""
        if not len(detections):
            return np.zeros((0, DIM), np.float32)
        import dlib

        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        if img.ndim == 2:
            img = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
        chips = np.stack(dlib.get_face_chips(img, dlib_shapes(detections), size=CHIP, padding=PADDING))
        x = DlibResNet.normalize(torch.from_numpy(chips).permute(0, 3, 1, 2).float())
        with torch.inference_mode():
            z = self._net.descriptor(x.contiguous(memory_format=torch.channels_last))
        return z.numpy().astype(np.float32)
