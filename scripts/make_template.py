"""Build ferindex/faces/template.json: the mean dlib 68-point landmarks of FER+ training faces,
in 48x48 coordinates. Album faces are aligned onto it so they share FER2013's framing.

Faces: usage == Training, has pixels, FER+ majority vote is an emotion (not unknown / not-a-face).
Landmarks: ferindex.faces.landmarks.fer_landmarks (reads artifacts/fer_landmarks.npy when present,
which scripts/cache_fer_landmarks.py makes the same way). Plausibility filter, because dlib
misfits turned, occluded or cartoon faces:
  1. eyes above nose tip above mouth, interocular distance 10-30 px (of 48), and
  2. after a similarity fit to the running mean, RMS residual < 0.2 interocular distances;
     step 2 is iterated 3 times with the mean recomputed over the kept faces.
Usage: python scripts/make_template.py [--landmarks artifacts/fer_landmarks.npy]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.faces import align, landmarks as lm

REPO = Path(__file__).resolve().parents[1]
MAX_RESIDUAL_IOD = 0.2


def interocular(pts: np.ndarray) -> np.ndarray:
    """(N,68,2) -> (N,) distance between eye centres."""
    return np.linalg.norm(pts[:, lm.RIGHT_EYE].mean(1) - pts[:, lm.LEFT_EYE].mean(1), axis=1)


def geometry_ok(pts: np.ndarray) -> np.ndarray:
    eye_y = pts[:, lm.EYES, 1].mean(1)
    nose_y = pts[:, 30, 1]
    mouth_y = pts[:, lm.MOUTH, 1].mean(1)
    iod = interocular(pts)
    right_left = pts[:, lm.RIGHT_EYE, 0].mean(1) < pts[:, lm.LEFT_EYE, 0].mean(1)
    return (eye_y < nose_y) & (nose_y < mouth_y) & (iod > 10) & (iod < 30) & right_left


def fit_residual(pts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """RMS distance to `ref` after the best similarity transform, in interocular units."""
    out = np.empty(len(pts))
    for i, p in enumerate(pts):
        moved = align.apply_transform(align.estimate_similarity(p, ref), p)
        out[i] = np.sqrt(((moved - ref) ** 2).sum(1).mean())
    return out / interocular(ref[None])[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landmarks", type=Path, default=REPO / "artifacts" / "fer_landmarks.npy")
    ap.add_argument("--out", type=Path, default=align.TEMPLATE_PATH)
    args = ap.parse_args(argv)
    root = data_dir()
    if root is None:
        print(DATA_HINT, file=sys.stderr)
        return 2
    data = np.load(root / "fer2013" / "fer2013.npz")
    votes = data["ferplus_votes"].astype(int)
    is_emotion = votes.argmax(1) < 8  # majority not "unknown" (8) or "NF" (9)
    rows = np.flatnonzero((data["usage"] == 0) & data["has_pixels"] & is_emotion)
    if args.landmarks.is_file():
        pts = np.load(args.landmarks)[rows]
        source = f"cached {args.landmarks.name}"
    else:
        pts = lm.fer_landmarks(data["pixels"][rows])
        source = "computed"
    keep = geometry_ok(pts)
    mean = pts[keep].mean(0)
    for _ in range(3):
        keep = geometry_ok(pts) & (fit_residual(pts, mean) < MAX_RESIDUAL_IOD)
        mean = pts[keep].mean(0)
    meta = {
        "landmarks": np.round(mean, 4).tolist(),
        "size": 48,
        "coordinates": "(x, y) in 48x48 FER pixel coordinates, pixel centres at integers",
        "faces_used": int(keep.sum()),
        "faces_considered": int(len(rows)),
        "method": (
            "mean of dlib 68-point landmarks (ferindex.faces.landmarks.fer_landmarks: bicubic x4 "
            "upscale, fixed median-HOG box) over FER2013 Training rows with pixels whose FER+ "
            "majority is an emotion; kept faces pass eye<nose<mouth ordering, interocular 10-30 "
            f"px and RMS similarity-fit residual < {MAX_RESIDUAL_IOD} interocular to the mean "
            "(3 iterations). Built by scripts/make_template.py."
        ),
        "landmarks_source": source,
    }
    args.out.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"kept {keep.sum()} of {len(rows)} faces; wrote {args.out}")
    print("eye centres", mean[lm.RIGHT_EYE].mean(0).round(2), mean[lm.LEFT_EYE].mean(0).round(2),
          "nose tip", mean[30].round(2), "mouth centre", mean[lm.MOUTH].mean(0).round(2),
          "chin", mean[8].round(2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
