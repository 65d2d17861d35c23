"""Face detector recall / false positives on the hand-labelled dlib example photos.

Ground truth: photos/dlib_faces/{training,testing}.xml (dlib imglab format, <box top left width
height>, boxes with ignore='1' skipped). A detection matches an unmatched ground-truth box when
IoU >= 0.5 (greedy, best score first). Photos without XML entries (e.g. dogs.jpg) are run too:
every detection there is a false positive for dogs.jpg and merely counted for the others.
Usage: python scripts/eval_detection.py [--configs hog0 hog1 hog2 cnn1] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.faces.detect import make_detector
from ferindex.io.decode import load_rgb

Box = tuple[int, int, int, int]
NO_FACE_PHOTOS = ("dogs.jpg",)
CONFIGS = {"hog0": ("hog", 0), "hog1": ("hog", 1), "hog2": ("hog", 2), "cnn1": ("cnn", 1),
           "cnn0": ("cnn", 0)}


def load_boxes(folder: Path) -> dict[str, list[Box]]:
    """{image file name: [(x0, y0, x1, y1) exclusive]} from training.xml + testing.xml."""
    out: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = out.setdefault(image.get("file"), [])
            for b in image.iter("box"):
                if b.get("ignore") == "1":
                    continue
                x, y, w, h = (int(b.get(k)) for k in ("left", "top", "width", "height"))
                boxes.append((x, y, x + w, y + h))
    return out


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(found: list[Box], truth: list[Box], threshold: float = 0.5) -> int:
    """Number of true positives; `found` must be sorted best score first."""
    free = list(truth)
    tp = 0
    for box in found:
        scores = [iou(box, t) for t in free]
        if scores and max(scores) >= threshold:
            free.pop(int(np.argmax(scores)))
            tp += 1
    return tp


def evaluate(folder: Path, detector_name: str, upsample: int) -> dict:
    """Per-image and total recall / false positives for one detector configuration."""
    truth = load_boxes(folder)
    detector = make_detector(detector_name, upsample=upsample)
    names = sorted(truth) + [n for n in NO_FACE_PHOTOS if n not in truth]
    extra = sorted(p.name for p in folder.glob("*.jpg") if p.name not in names)
    rows, seconds = [], 0.0
    for name in names + extra:
        rgb = load_rgb(folder / name)
        t0 = time.perf_counter()
        found = [d.box for d in detector.detect(rgb)]
        seconds += time.perf_counter() - t0
        labelled = name in truth or name in NO_FACE_PHOTOS
        gt = truth.get(name, [])
        tp = match(found, gt) if labelled else None
        rows.append({"image": name, "size": list(rgb.shape[:2]), "faces": len(gt) if labelled
                     else None, "found": len(found), "tp": tp,
                     "fp": len(found) - tp if labelled else None})
    lab = [r for r in rows if r["tp"] is not None]
    n_gt = sum(r["faces"] for r in lab)
    tp = sum(r["tp"] for r in lab)
    return {"config": f"{detector_name} upsample={upsample}", "rows": rows,
            "recall": tp / n_gt, "tp": tp, "faces": n_gt, "fp": sum(r["fp"] for r in lab),
            "ms_per_image": 1000 * seconds / len(rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["hog0", "hog1", "hog2", "cnn1"],
                    choices=sorted(CONFIGS))
    ap.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = ap.parse_args(argv)
    root = data_dir()
    if root is None:
        print(DATA_HINT, file=sys.stderr)
        return 2
    folder = root / "photos" / "dlib_faces"
    results = [evaluate(folder, *CONFIGS[c]) for c in args.configs]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for res in results:
        print(f"\n== {res['config']}")
        print(f"{'image':28s} {'size':>9s} {'faces':>5s} {'found':>5s} {'tp':>3s} {'fp':>3s}")
        for r in res["rows"]:
            fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
            print(f"{r['image']:28s} {'x'.join(map(str, r['size'])):>9s} {fmt(r['faces']):>5s} "
                  f"{r['found']:>5d} {fmt(r['tp']):>3s} {fmt(r['fp']):>3s}")
    print(f"\n{'config':18s} {'recall':>7s} {'tp/faces':>9s} {'fp':>3s} {'ms/img':>7s}")
    for res in results:
        print(f"{res['config']:18s} {res['recall']:7.3f} {res['tp']:>4d}/{res['faces']:<4d} "
              f"{res['fp']:>3d} {res['ms_per_image']:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
