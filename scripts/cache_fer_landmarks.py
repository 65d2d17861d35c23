"""Cache dlib 68-point landmarks for every FER2013 row (training builds partial images and
eye/mouth regions from them without re-running dlib each epoch).

Writes <out>.npy: (35887,68,2) float32 in 48x48 pixel coordinates, zeros where has_pixels is
False, and <out>.json describing how it was made. Usage:
    nice -n 10 python scripts/cache_fer_landmarks.py [--out artifacts/fer_landmarks]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.faces import landmarks as lm

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "fer_landmarks")
    ap.add_argument("--chunk", type=int, default=2000)
    args = ap.parse_args(argv)
    root = data_dir()
    if root is None:
        print(DATA_HINT, file=sys.stderr)
        return 2
    npz = root / "fer2013" / "fer2013.npz"
    data = np.load(npz)
    pixels, has = data["pixels"], data["has_pixels"]
    out = np.zeros((len(pixels), 68, 2), dtype=np.float32)
    t0 = time.time()
    for start in range(0, len(pixels), args.chunk):
        stop = min(start + args.chunk, len(pixels))
        out[start:stop] = lm.fer_landmarks(pixels[start:stop])
        print(f"{stop}/{len(pixels)} rows, {time.time() - t0:.0f} s", flush=True)
    out[~has] = 0.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out.with_suffix(".npy"), out)
    meta = {
        "shape": list(out.shape),
        "dtype": "float32",
        "coordinates": "(x, y) in 48x48 FER pixel coordinates, pixel centres at integers",
        "point_order": "iBUG 300-W 68 points (dlib shape_predictor_68_face_landmarks.dat)",
        "method": (
            f"ferindex.faces.landmarks.fer_landmarks: bicubic upscale x{lm.FER_UPSCALE}, "
            f"replicate-pad {lm.FER_PAD} px, fixed box centre {lm.FER_BOX_CENTER} side "
            f"{lm.FER_BOX_SIDE} (48-px units; the median dlib HOG box on FER training faces)"
        ),
        "rows_without_pixels": "all-zero landmarks",
        "source": str(npz.name),
        "source_sha1_pixels": hashlib.sha1(pixels.tobytes()).hexdigest(),
        "seconds": round(time.time() - t0, 1),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out.with_suffix('.npy')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
