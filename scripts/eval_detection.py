"""Face detector precision, recall and time per photo on labelled photos and a no-face set.

Sets (all under the research data folder, except the negatives, made at run time):
- `dlib`: photos/dlib_faces, hand-labelled boxes (training.xml + testing.xml, boxes with
  ignore='1' skipped); a detection matches an unmatched box when IoU >= 0.5 (greedy, best score
  first). Photos without boxes (bald_guys.jpg, Tom_Cruise_avp_2014_4.jpg) are shown, not scored.
- `face_recognition`: photos/face_recognition, scored by face count (FACE_COUNTS below, counted
  by eye; partial faces count): true positives = min(found, faces), false = the excess.
- `yale`: the 164 Yale photos, one face each (by count).
- `negative`: images with no human face: dogs.jpg, images shipped in scikit-image (coffee, cat,
  rocket, textures, microscopy, text...) and crops of the astronaut's mission patch at several
  scales; every detection is a false face.
- `turned` (recall only, not in the totals): the dlib photos turned by 90 degrees, boxes turned
  with them: what the no-face retry recovers.
Precision and recall are over dlib + face_recognition + yale (+ negative for precision).

Usage: python scripts/eval_detection.py [--configs plain adaptive verified default] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ferindex.config import DATA_HINT, data_dir
from ferindex.faces.detect import WORK_SIDE, CheckedDetector, HogDetector, make_detector
from ferindex.io.decode import load_rgb
from ferindex.store.catalog import box_iou

Box = tuple[int, int, int, int]
NO_FACE_PHOTOS = ("dogs.jpg",)
# photos/face_recognition: faces per photo (paths relative to that folder)
FACE_COUNTS = {"examples/knn_examples/test/kit_with_rose.jpg": 2,
               "examples/knn_examples/test/obama_and_biden.jpg": 3,
               "examples/two_people.jpg": 2}  # every other photo there: 1
ASTRONAUT_PATCH = (126, 335, 216, 426)  # skimage.data.astronaut(): the mission patch's box
CONFIGS: dict[str, tuple[str, Callable[[], object]]] = {
    "plain": ("HOG upsample 1, no checks (the former default)",
              lambda: make_detector("hog-plain", upsample=1)),
    "adaptive": ("HOG, adaptive scale only",
                 lambda: HogDetector(upsample=1, work_side=WORK_SIDE)),
    "verified": ("HOG, adaptive scale + CNN verification",
                 lambda: CheckedDetector(HogDetector(upsample=1, work_side=WORK_SIDE),
                                         retry=False)),
    "default": ("HOG, adaptive + verification + no-face retry (the default, `hog`)",
                lambda: make_detector("hog", upsample=1)),
    "cnn": ("dlib MMOD CNN on the whole photo, upsample 1 (slow)",
            lambda: make_detector("cnn", upsample=1)),
}
SCORED = ("dlib", "face_recognition", "yale")


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


def match(found: list[Box], truth: list[Box], threshold: float = 0.5) -> int:
    """Number of true positives; `found` must be sorted best score first."""
    free = list(truth)
    tp = 0
    for box in found:
        scores = [box_iou(box, t) for t in free]
        if scores and max(scores) >= threshold:
            free.pop(int(np.argmax(scores)))
            tp += 1
    return tp


# A photo to score: (set, name, image, truth) where truth is a list of boxes, a face count, or
# None (shown only).
Item = tuple[str, str, np.ndarray, "list[Box] | int | None"]


def _turn_box(box: Box, shape: tuple[int, int]) -> Box:
    """`box` on an (h, w) photo -> the box on np.rot90(photo) (a quarter turn anticlockwise)."""
    x0, y0, x1, y1 = box
    w = shape[1]
    return (y0, w - x1, y1, w - x0)


def dlib_items(root: Path) -> Iterator[Item]:
    folder = root / "photos" / "dlib_faces"
    truth = load_boxes(folder)
    for p in sorted(folder.glob("*.jpg")):
        gt = truth.get(p.name, [] if p.name in NO_FACE_PHOTOS else None)
        yield ("negative" if p.name in NO_FACE_PHOTOS else "dlib"), p.name, load_rgb(p), gt


def turned_items(root: Path) -> Iterator[Item]:
    folder = root / "photos" / "dlib_faces"
    for name, boxes in sorted(load_boxes(folder).items()):
        rgb = load_rgb(folder / name)
        yield "turned", name, np.ascontiguousarray(np.rot90(rgb)), [
            _turn_box(b, rgb.shape[:2]) for b in boxes]


def face_recognition_items(root: Path) -> Iterator[Item]:
    folder = root / "photos" / "face_recognition"
    for p in sorted(f for f in folder.rglob("*") if f.is_file()):
        rel = p.relative_to(folder).as_posix()
        yield "face_recognition", rel, load_rgb(p), FACE_COUNTS.get(rel, 1)


def yale_items(root: Path) -> Iterator[Item]:
    for p in sorted((root / "yalefaces").glob("subject*")):
        yield "yale", p.name, load_rgb(p), 1


def negative_items() -> Iterator[Item]:
    """No-face images from the scikit-image wheel, and crops of the astronaut's patch."""
    import cv2
    import skimage.data as sd

    for name in ("coffee", "chelsea", "cat", "rocket", "brick", "grass", "gravel", "moon",
                 "page", "text", "horse", "logo", "colorwheel", "hubble_deep_field",
                 "immunohistochemistry", "retina"):
        img = np.asarray(getattr(sd, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        yield "negative", name, img[..., :3] if img.ndim == 3 else img.astype(np.uint8), []
    astro = sd.astronaut()
    x0, y0, x1, y1 = ASTRONAUT_PATCH
    cx, cy, side = (x0 + x1) // 2, (y0 + y1) // 2, x1 - x0
    for grow in (1.2, 1.6, 2.0, 2.6):
        half = int(side * grow / 2)
        crop = astro[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half]
        for size in (160, 320, 640):
            yield ("negative", f"astronaut patch x{grow} @{size}px",
                   cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC), [])


def score(found: list[Box], truth: list[Box] | int) -> tuple[int, int, int]:
    """(faces, true positives, false positives) of one photo."""
    if isinstance(truth, int):
        tp = min(len(found), truth)
        return truth, tp, len(found) - tp
    tp = match(found, truth)
    return len(truth), tp, len(found) - tp


def evaluate(detector, items: list[Item]) -> dict:
    rows = []
    for group, name, rgb, truth in items:
        t0 = time.perf_counter()
        found = [tuple(d.box) for d in detector.detect(rgb)]
        seconds = time.perf_counter() - t0
        row = {"set": group, "image": name, "size": list(rgb.shape[:2]), "found": len(found),
               "seconds": round(seconds, 4), "faces": None, "tp": None, "fp": None}
        if truth is not None:
            row["faces"], row["tp"], row["fp"] = score(found, truth)
        rows.append(row)
    sets = {}
    for group in sorted({r["set"] for r in rows}):
        rs = [r for r in rows if r["set"] == group and r["tp"] is not None]
        faces, tp, fp = (sum(r[k] for r in rs) for k in ("faces", "tp", "fp"))
        sets[group] = {"photos": len(rs), "faces": faces, "tp": tp, "fp": fp,
                       "ms_per_photo": 1000 * np.mean([r["seconds"] for r in rows
                                                       if r["set"] == group])}
    scored = [sets[g] for g in SCORED if g in sets]
    tp, faces = sum(s["tp"] for s in scored), sum(s["faces"] for s in scored)
    fp = sum(s["fp"] for s in scored) + sets.get("negative", {}).get("fp", 0)
    main = [r for r in rows if r["set"] != "turned"]
    return {"rows": rows, "sets": sets, "recall": tp / faces if faces else None,
            "precision": tp / (tp + fp) if tp + fp else None, "tp": tp, "fp": fp,
            "faces": faces, "ms_per_photo": 1000 * np.mean([r["seconds"] for r in main])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["plain", "adaptive", "verified", "default"],
                    choices=sorted(CONFIGS))
    ap.add_argument("--per-photo", action="store_true", help="print every photo's counts too")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = ap.parse_args(argv)
    root = data_dir()
    if root is None:
        print(DATA_HINT, file=sys.stderr)
        return 2
    items = [*dlib_items(root), *face_recognition_items(root), *yale_items(root),
             *negative_items(), *turned_items(root)]
    results = {}
    for c in args.configs:
        results[c] = evaluate(CONFIGS[c][1](), items)
        print(f"{c}: done", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=1, default=float))
        return 0
    if args.per_photo:
        for c, res in results.items():
            print(f"\n== {c}: {CONFIGS[c][0]}")
            for r in res["rows"]:
                fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
                print(f"{r['set']:17s} {r['image'][:40]:40s} {fmt(r['faces']):>5s} "
                      f"{r['found']:>5d} {fmt(r['tp']):>3s} {fmt(r['fp']):>3s}")
    groups = [*SCORED, "negative", "turned"]
    print(f"\n{'config':9s} {'precision':>9s} {'recall':>7s} {'tp/faces':>9s} {'fp':>4s} "
          f"{'ms/photo':>8s}   " + "  ".join(f"{g} tp/faces fp" for g in groups))
    for c, res in results.items():
        per = "  ".join(f"{g}: {res['sets'][g]['tp']}/{res['sets'][g]['faces']} "
                        f"{res['sets'][g]['fp']}" for g in groups if g in res["sets"])
        print(f"{c:9s} {res['precision']:9.3f} {res['recall']:7.3f} "
              f"{res['tp']:>4d}/{res['faces']:<4d} {res['fp']:>4d} {res['ms_per_photo']:8.0f}   "
              + per)
    for c in results:
        print(f"  {c}: {CONFIGS[c][0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
