"""What goes into and comes out of the catalog: the row and record dataclasses, the float32/uint8
BLOB encoding of arrays, and box overlap.

Split out of store/catalog.py because these are plain data: per-photo processing
(pipeline/process.py) fills the records without touching SQLite, and the BLOB helpers are shared
by the catalog_*.py modules that write and read arrays.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PhotoRow:
    """What the incremental scan needs to know about a catalogued photo."""

    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    error: str | None


@dataclass
class FaceRecord:
    """One detected face ready to be stored (ids are assigned by the catalog)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray  # (68, 2) float32
    chip: np.ndarray  # (48, 48) uint8, aligned
    chip_landmarks: np.ndarray | None = None  # the landmarks mapped into the chip
    thumb: bytes | None = None  # small JPEG of the box, for UIs
    vectors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (kind, model) -> vec
    probs: np.ndarray | None = None  # the shown softmax (see Predictions)
    label: str | None = None
    probs_model: str | None = None
    probs_raw: np.ndarray | None = None
    probs_labeller: str | None = None
    verify_score: float | None = None  # the face verifier's confidence (faces/quality.py)
    sharpness: float | None = None
    yaw: float | None = None  # degrees, 0 = frontal
    quality: float | None = None  # [0, 1]; analysis skips faces below QUALITY_FLOOR


@dataclass
class Predictions:
    """The expression model's softmax of some faces as the catalog stores it (`faces` columns
    probs_raw, probs, label, probs_model, probs_labeller).

    `probs` is what every reader shows: the network's `raw` softmax under the model card's prior
    correction. `raw` is kept beside it because the correction belongs to the card, not to the
    weights: a release with a new calibration re-derives `probs` from it without a network pass,
    and the KNN vote blends in `raw` itself."""

    raw: np.ndarray  # (n, C) float32: the network's softmax
    probs: np.ndarray  # (n, C) float32: `raw` prior-corrected as the card says
    labels: list[str]  # the argmax class of each row of `probs`
    model_id: str
    labeller: str  # the model id and its softmax calibration (analysis/album.py `labeller_id`)


@dataclass
class PhotoRecord:
    """A processed photo: its stat, content hash, outcome and faces."""

    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str  # ok | error | noface
    error: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    faces: list[FaceRecord] = field(default_factory=list)


def as_blob(a: np.ndarray, dtype: str) -> bytes:
    """An array as the BLOB the catalog stores: its contiguous `dtype` bytes."""
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def float_blob(a: np.ndarray | None) -> bytes | None:
    """An optional float32 array as its BLOB (None stays None: a NULL column); see as_floats."""
    return None if a is None else as_blob(a, "float32")


def as_floats(blob: bytes | None) -> np.ndarray | None:
    """A float32 BLOB as a read-only array (None stays None)."""
    return None if blob is None else np.frombuffer(blob, np.float32)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
