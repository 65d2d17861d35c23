"""CK+48: 48x48 crops in <class>/S###_seq_frame.png, with subject ids from the file name.

Splits are by subject, never by image: three consecutive frames of one sequence are near-copies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DATA_HINT, data_dir
from ..errors import FerindexError
from .fer import FERPLUS_CLASSES, FaceSet
from .folders import load_class_folders

# CK+ folder names -> FER+ class names, so a FER+-trained model can be scored cross-dataset.
CKPLUS_TO_FERPLUS = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                     "happy": "happiness", "sadness": "sadness", "surprise": "surprise"}


def subject_of(path: Path) -> int:
    """S005_001_00000011.png -> 5."""
    return int(path.name.split("_")[0].lstrip("S"))


def load_ckplus(root: Path | None = None, classes: list[str] | None = None) -> FaceSet:
    """All CK+48 faces; labels index `classes` (FER+ class names by default), groups = subject."""
    root = root or data_dir()
    folder = Path(root) / "ckplus48" if root else None
    if folder is None or not folder.is_dir():
        raise FerindexError(DATA_HINT)
    return load_class_folders(folder, classes or FERPLUS_CLASSES, CKPLUS_TO_FERPLUS, subject_of)


def subject_folds(subjects: np.ndarray, n_folds: int = 10, seed: int = 0) -> list[np.ndarray]:
    """Fold index arrays with every subject in exactly one fold."""
    uniq = np.unique(subjects)
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    return [np.flatnonzero(np.isin(subjects, part)) for part in np.array_split(uniq, n_folds)]
