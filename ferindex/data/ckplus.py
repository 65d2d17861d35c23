"""CK+48: 48x48 crops in <class>/S###_seq_frame.png, with subject ids from the file name.

Splits are by subject, never by image: three consecutive frames of one sequence are near-copies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..config import DATA_HINT, data_dir
from ..errors import FerindexError
from .fer import FERPLUS_CLASSES, FaceSet

# CK+ folder names -> FER+ class names, so a FER+-trained model can be scored cross-dataset.
CKPLUS_TO_FERPLUS = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
                     "happy": "happiness", "sadness": "sadness", "surprise": "surprise"}


def load_ckplus(root: Path | None = None, classes: list[str] | None = None) -> FaceSet:
    """All CK+48 faces; labels index `classes` (FER+ class names by default), groups = subject."""
    root = root or data_dir()
    folder = Path(root) / "ckplus48" if root else None
    if folder is None or not folder.is_dir():
        raise FerindexError(DATA_HINT)
    classes = classes or FERPLUS_CLASSES
    images, labels, subjects = [], [], []
    for cls_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = CKPLUS_TO_FERPLUS.get(cls_dir.name, cls_dir.name)
        for f in sorted(cls_dir.glob("*.png")):
            img = np.asarray(Image.open(f).convert("L").resize((48, 48)))
            images.append(img)
            labels.append(classes.index(name))
            subjects.append(int(f.name.split("_")[0].lstrip("S")))
    return FaceSet(np.stack(images), np.array(labels, np.int64), classes, None, None, np.array(subjects))


def subject_folds(subjects: np.ndarray, n_folds: int = 10, seed: int = 0) -> list[np.ndarray]:
    """Fold index arrays with every subject in exactly one fold."""
    uniq = np.unique(subjects)
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    return [np.flatnonzero(np.isin(subjects, part)) for part in np.array_split(uniq, n_folds)]
