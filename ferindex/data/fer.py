"""FER2013 with FER+ crowd votes, read from the single npz described in the data README.

The FER+ protocol drops rows whose vote majority is unknown / not-a-face, and honest evaluation
drops test rows that are byte-identical to a training image (`dup_group`), because a model that
memorised the training face would otherwise be credited for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DATA_HINT, data_dir
from ..errors import FerindexError

FERPLUS_CLASSES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
FER2013_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SPLITS = {"train": 0, "val": 1, "test": 2}  # Training, PublicTest, PrivateTest


@dataclass(frozen=True)
class FaceSet:
    """Aligned 48x48 grayscale faces with hard labels and (optionally) soft targets."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    soft: np.ndarray | None = None  # (N, C) float32 vote distribution
    rows: np.ndarray | None = None  # row index in the source file (for landmarks caches)
    groups: np.ndarray | None = None  # identity / subject ids where known

    def __len__(self) -> int:
        return len(self.labels)


def fer_path(root: Path | None = None) -> Path:
    root = root or data_dir()
    if root is None:
        raise FerindexError(DATA_HINT)
    path = Path(root) / "fer2013" / "fer2013.npz"
    if not path.is_file():
        raise FerindexError(f"{path}: FER2013 npz not found ({DATA_HINT})")
    return path


def load_fer(split: str, labels: str = "ferplus", dedup: bool = True, root: Path | None = None) -> FaceSet:
    """One split of FER2013 ("train", "val", "test") with FER+ ("ferplus") or original ("fer2013")
    labels. Test/val rows identical to a Training image are dropped when `dedup`."""
    d = np.load(fer_path(root))
    usage = d["usage"]
    keep = (usage == SPLITS[split]) & d["has_pixels"]
    if dedup and split != "train":
        train_groups = np.unique(d["dup_group"][(usage == 0) & d["has_pixels"]])
        keep &= ~np.isin(d["dup_group"], train_groups)
    if labels == "ferplus":
        votes = d["ferplus_votes"].astype(np.float32)
        emo = votes[:, :8]
        majority = votes.argmax(axis=1)
        keep &= (majority < 8) & (emo.sum(axis=1) > 0)
        rows = np.flatnonzero(keep)
        soft = emo[rows] / emo[rows].sum(axis=1, keepdims=True)
        return FaceSet(d["pixels"][rows], emo[rows].argmax(axis=1).astype(np.int64), FERPLUS_CLASSES, soft, rows)
    if labels == "fer2013":
        keep &= d["emotion"] >= 0
        rows = np.flatnonzero(keep)
        return FaceSet(d["pixels"][rows], d["emotion"][rows].astype(np.int64), FER2013_CLASSES, None, rows)
    raise ValueError(f"unknown label set {labels!r}: use 'ferplus' or 'fer2013'")
