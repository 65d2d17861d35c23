"""FER+ Training and CK+48 as one training source, and the reference bank's distinct faces.

CK+ is split by subject, never by image: a held-out fold's subjects stay out of training.
"""
from __future__ import annotations

import numpy as np

from .ckplus import load_ckplus, subject_folds
from .fer import FaceSet, load_fer


def ckplus_fold(data: dict) -> tuple[FaceSet, FaceSet | None]:
    """CK+48 split by subject: (training subjects, held-out fold), or (all, None) without a fold."""
    ck = load_ckplus()
    if data.get("fold") is None:
        return ck, None
    fold = subject_folds(ck.groups, data.get("n_folds", 10), data.get("seed", 0))[data["fold"]]
    rest = np.setdiff1d(np.arange(len(ck)), fold)
    return (*(FaceSet(ck.images[i], ck.labels[i], ck.classes, None, None, ck.groups[i]) for i in (rest, fold)),)


def with_ckplus(fer: FaceSet, ck: FaceSet, repeat: int) -> FaceSet:
    """FER+ Training plus CK+ faces (each `repeat` times: 900 posed faces next to 28k), with one-hot
    soft targets for CK+, rows -1 (no FER row) and groups = CK+ subject (-1 for FER+)."""
    n = len(ck) * repeat
    tile = lambda a: np.concatenate([a] * repeat)  # noqa: E731
    soft = np.eye(len(fer.classes), dtype=np.float32)[tile(ck.labels)]
    return FaceSet(np.concatenate([fer.images, tile(ck.images)]), np.concatenate([fer.labels, tile(ck.labels)]),
                   fer.classes, np.concatenate([fer.soft, soft]), np.concatenate([fer.rows, np.full(n, -1)]),
                   np.concatenate([np.full(len(fer), -1), tile(ck.groups)]))


def distinct_faces(images: np.ndarray) -> np.ndarray:
    """Sorted indices of the first copy of each distinct image: the reference bank holds every
    training face once, however often training repeated it."""
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    return np.sort(first)


def bank_faces() -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a shipped model's reference bank: FER+ Training and all of CK+48, each
    distinct face once. A model rebuilt outside train.py (an ensemble, a member) gets the same bank."""
    train = with_ckplus(load_fer("train", "ferplus"), load_ckplus(), 1)
    keep = distinct_faces(train.images)
    return train.images[keep], train.labels[keep]
