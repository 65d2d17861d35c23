"""Best shot of a burst: among photos taken seconds apart of the same people, the one where the
most faces smile with their eyes open.

Eyes: the eye aspect ratio (Soukupova & Cech 2016) from the six 68-point landmarks of each eye,
EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|); about 0.25-0.35 open, below ~0.2 closed, independent
of face size. Smiles: the expression posterior of "happiness". Time: EXIF DateTimeOriginal as
the build stored it in photos.taken_at; photos without a time are never grouped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

import numpy as np

EYES_OPEN_EAR = 0.2
SMILE_PROB = 0.5
_EYES = (slice(36, 42), slice(42, 48))  # subject's right eye, left eye (iBUG order)


def eye_aspect_ratio(landmarks68: np.ndarray) -> float:
    """Mean EAR of both eyes from (68, 2) landmarks."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {pts.shape}")
    ears = []
    for eye in _EYES:
        p = pts[eye]
        width = np.linalg.norm(p[0] - p[3])
        height = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ears.append(height / (2 * width) if width > 0 else 0.0)
    return float(np.mean(ears))


def parse_time(raw: str | None) -> datetime | None:
    """photos.taken_at text (EXIF "2024:05:01 12:00:03" or ISO) -> datetime, None if unreadable."""
    if not raw:
        return None
    raw = str(raw).strip().rstrip("\x00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(raw[:19], fmt)
        except ValueError:
            continue
    return None


@dataclass
class Shot:
    """One photo: when, who (person ids, may be empty) and per face (smile prob, EAR)."""

    photo_id: int
    time: datetime | None
    people: frozenset[int] = frozenset()
    faces: list[tuple[float, float]] = field(default_factory=list)

    def score(self) -> tuple[int, float]:
        """(faces smiling with eyes open, total smile probability) - compared lexicographically."""
        good = sum(1 for smile, ear in self.faces if smile >= SMILE_PROB and ear >= EYES_OPEN_EAR)
        return good, float(sum(smile for smile, _ in self.faces))


def bursts(shots: Sequence[Shot], max_gap_s: float = 5.0) -> list[list[int]]:
    """Groups (indices into shots) of photos taken within max_gap_s of the previous one and
    sharing someone (when people are known). Untimed photos are left out."""
    order = sorted((i for i, s in enumerate(shots) if s.time is not None),
                   key=lambda i: shots[i].time)
    groups: list[list[int]] = []
    for i in order:
        if groups:
            prev = shots[groups[-1][-1]]
            gap = (shots[i].time - prev.time).total_seconds()
            shared = not (prev.people and shots[i].people) or bool(prev.people & shots[i].people)
            if gap <= max_gap_s and shared:
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def best_shots(shots: Sequence[Shot], max_gap_s: float = 5.0) -> list[tuple[list[int], int]]:
    """[(burst, index of its best shot)] for every burst of two or more photos."""
    return [(g, max(g, key=lambda i: shots[i].score())) for g in bursts(shots, max_gap_s) if len(g) > 1]
