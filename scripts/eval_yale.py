"""End-to-end expression accuracy on whole photos of unseen people (Yale faces).

Photos: yalefaces/subjectNN.{happy,sad,surprised,normal} (320x243 GIFs without extension), 15
people. subject04.normal and subject04.sad are byte-identical, so both are dropped (58 photos).
Pipeline: load_rgb -> HOG detector (upsample 1, best-scoring face) -> crop -> the expression
model (ferindex.embed.load_model). Two crops are compared: `aligned` (similarity warp onto the
FER template, faces/align.py) and `box` (square detector-box crop, the naive baseline).
Condition -> FER+ class: happy->happiness, sad->sadness, surprised->surprise, normal->neutral.
Reported per crop: softmax argmax over all model classes (prior-corrected as the model card says,
what users see, and raw), argmax restricted to the 4 classes, and KNN (K=11, distance-weighted,
model metric) against the model's reference bank (as shown: blended with the softmax and prior-corrected; and raw). Photos without a
detected face count as errors.
Usage: python scripts/eval_yale.py [--crop aligned box] [--model NAME_OR_PATH] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ferindex.analysis.calibration import reweight
from ferindex.analysis.classify import make_knn
from ferindex.config import DATA_HINT, data_dir
from ferindex.embed import load_model
from ferindex.faces import align
from ferindex.faces.detect import make_detector
from ferindex.io.decode import load_rgb

CONDITIONS = {"happy": "happiness", "sad": "sadness", "surprised": "surprise", "normal": "neutral"}
DUPLICATES = {"subject04.normal", "subject04.sad"}
K = 11


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", nargs="+", default=["aligned", "box"], choices=["aligned", "box"])
    ap.add_argument("--model", default=None, help="model name, card path or folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    root = data_dir()
    if root is None:
        print(DATA_HINT, file=sys.stderr)
        return 2
    model = load_model(args.model)
    missing = [c for c in CONDITIONS.values() if c not in model.classes]
    if missing:
        print(f"model {model.model_id} lacks classes {missing}", file=sys.stderr)
        return 2
    detector = make_detector("hog", upsample=1)
    photos = sorted(p for p in (root / "yalefaces").iterdir()
                    if p.suffix.lstrip(".") in CONDITIONS and p.name not in DUPLICATES)
    truth, crops, marks, found = [], {c: [] for c in args.crop}, {c: [] for c in args.crop}, []
    for path in photos:
        rgb = load_rgb(path)
        dets = detector.detect(rgb)
        truth.append(model.classes.index(CONDITIONS[path.suffix.lstrip(".")]))
        found.append(bool(dets))
        if not dets:
            continue
        d = dets[0]
        for crop in args.crop:
            if crop == "aligned":
                chip, lm = align.align_face_with_landmarks(rgb, d.landmarks, model.input_size)
            else:
                m = align.box_matrix(d.box, model.input_size)
                chip, lm = align.warp(rgb, m, model.input_size), align.apply_transform(m, d.landmarks)
            crops[crop].append(chip)
            marks[crop].append(lm)
    truth, found = np.asarray(truth), np.asarray(found)
    four = [model.classes.index(c) for c in CONDITIONS.values()]
    knn, knn_raw = make_knn(model, k=K), make_knn(model, k=K, calibrated=False)
    results = []
    for crop in args.crop:
        z, raw = model.embed_and_proba(np.asarray(crops[crop]), np.asarray(marks[crop]), calibrated=False)
        proba = reweight(raw, model.class_weight("softmax"))
        preds = {
            "softmax": proba.argmax(1),
            "softmax_raw": raw.argmax(1),
            "softmax_4": np.asarray(four)[proba[:, four].argmax(1)],
            f"knn{K}": knn.predict_proba(z, raw).argmax(1),  # columns in model.classes order
            f"knn{K}_raw": knn_raw.predict_proba(z).argmax(1),
        }
        row = {"crop": crop, "photos": len(truth), "detected": int(found.sum())}
        for name, pred in preds.items():
            correct = pred == truth[found]
            row[name] = float(correct.sum() / len(truth))
            row[name + "_per_condition"] = {
                cond: float(correct[truth[found] == model.classes.index(cls)].mean())
                for cond, cls in CONDITIONS.items()}
        results.append(row)
    if args.json:
        print(json.dumps({"model": model.model_id, "results": results}, indent=1))
        return 0
    print(f"model {model.model_id}; {len(truth)} photos, {int(found.sum())} with a face")
    print(f"{'crop':8s} {'reading':12s} {'accuracy':>8s}   per condition (" + ", ".join(CONDITIONS) + ")")
    for r in results:
        for name in ("softmax", "softmax_raw", "softmax_4", f"knn{K}", f"knn{K}_raw"):
            per = " ".join(f"{v:.2f}" for v in r[name + "_per_condition"].values())
            print(f"{r['crop']:8s} {name:12s} {r[name]:8.3f}   {per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
