"""People clustering quality: HDBSCAN on dlib identity descriptors against known identities.

- photos/dlib_johns: 5 people x 11 aligned 150x150 chips (the whole chip is the face box);
- photos/face_recognition/examples/knn_examples/train/<person>/: whole photos, faces detected
  (the default detector); a photo with more or fewer than one face is reported and left out;
- both together (10 people).
Each face's photo is its cannot-link group (here one face per photo, so the constraint never
binds: tests/test_people_constraints.py checks it on a group photo). Prints pairwise
precision/recall and the adjusted Rand index (noise = singleton clusters).

    python scripts/eval_people.py [--min-cluster-size 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from ferindex.analysis.people import PeopleClustering, chip_descriptors, pairwise_precision_recall
from ferindex.config import DATA_HINT, data_dir

IMAGE_EXT = {".jpg", ".jpeg", ".png"}


def johns(root: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(p for p in (root / "photos" / "dlib_johns").glob("*/*") if p.suffix.lower() in IMAGE_EXT)
    chips = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    return chip_descriptors(chips), np.array([p.parent.name for p in files])


def knn_examples(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from ferindex.faces.detect import make_detector
    from ferindex.faces.identity import IdentityEncoder
    from ferindex.io.decode import load_rgb

    det, enc = make_detector("hog", upsample=1), IdentityEncoder()  # the build's default
    X, y = [], []
    train = root / "photos" / "face_recognition" / "examples" / "knn_examples" / "train"
    for p in sorted(f for f in train.glob("*/*") if f.suffix.lower() in IMAGE_EXT):
        rgb = load_rgb(p)
        faces = det.detect(rgb)
        if len(faces) != 1:
            print(f"  skipped {p.relative_to(root)}: {len(faces)} faces")
            continue
        X.append(enc.encode(rgb, faces)[0])
        y.append(p.parent.name)
    return np.array(X), np.array(y)


def report(name: str, X: np.ndarray, y: np.ndarray, min_cluster_size: int) -> None:
    pc = PeopleClustering(min_cluster_size=min_cluster_size).fit(X, groups=np.arange(len(X)))
    p, r = pairwise_precision_recall(y, pc.labels_)
    ari = adjusted_rand_score(y, np.where(pc.labels_ < 0, -1 - np.arange(len(y)), pc.labels_))
    print(f"{name:<14}{len(y):>6}{len(set(y)):>8}{pc.labels_.max() + 1:>10}{(pc.labels_ < 0).sum():>7}"
          f"{p:>11.3f}{r:>8.3f}{ari:>7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-cluster-size", type=int, default=3)
    args = ap.parse_args()
    root = data_dir()
    if root is None:
        raise SystemExit(DATA_HINT)
    t = time.time()
    sets = {"dlib_johns": johns(root), "knn_examples": knn_examples(root)}
    sets["both"] = tuple(np.concatenate([a, b]) for a, b in zip(*sets.values()))
    print(f"descriptors in {time.time() - t:.1f}s")
    print(f"{'set':<14}{'faces':>6}{'people':>8}{'clusters':>10}{'noise':>7}{'precision':>11}"
          f"{'recall':>8}{'ARI':>7}")
    for name, (X, y) in sets.items():
        # knn_examples has 1-2 photos per person: clusters of two must be allowed there
        report(name, X, y, args.min_cluster_size if name == "dlib_johns" else 2)


if __name__ == "__main__":
    main()
