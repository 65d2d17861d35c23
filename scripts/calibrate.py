"""Fit the prior correction of a model's labels on FER+ PublicTest and write it into its card.

    python scripts/calibrate.py [--model NAME|PATH] [--dry-run]

For the softmax, tau in prior ** -tau (prior = the reference bank's class frequencies); for the
KNN label, the weight of the softmax blended into its votes (0 to 0.5) and then tau; each chosen
on FER+ PublicTest (dedup), the selection split: the best balanced accuracy costing at most one
point of accuracy against the raw reading; PrivateTest is never looked at. Prints the table of
every setting tried.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.analysis.calibration import BlendCalibrator, PriorCalibrator  # noqa: E402
from ferindex.data.fer import load_fer  # noqa: E402
from ferindex.embed import load_model  # noqa: E402
from ferindex.evaluation import label_readings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the card")
    args = ap.parse_args()
    model = load_model(args.model)
    val = load_fer("val", "ferplus")
    z, p = model.embed_and_proba(val.images, calibrated=False)
    readings = label_readings(model, z, p)
    prior = np.bincount(model.reference_bank()[1], minlength=len(model.classes)).astype(float)
    cal = {"fitted_on": f"FER+ PublicTest (dedup, n={len(val)}): the setting (tau; for KNN also the softmax weight blended into the votes, 0-0.5) with the best balanced accuracy at most 1 point of accuracy below the raw reading",
           "prior": "reference bank class frequencies"}
    knn = BlendCalibrator().fit(readings["knn_raw"], readings["softmax_raw"], val.labels, prior)
    softmax = PriorCalibrator().fit(readings["softmax_raw"], val.labels, prior)
    fits = {"knn": (knn.softmax_weight_, knn, knn.scores_), "softmax": (0.0, softmax, {0.0: softmax.scores_})}
    for kind, (w, c, tables) in fits.items():  # tables: {softmax weight: {tau: (acc, bacc)}}
        (acc0, bacc0), (acc, bacc) = tables[0.0][0.0], tables[w][c.tau_]
        print(f"{kind}: softmax weight {w:.1f}, tau {c.tau_:+.2f}  accuracy {100 * acc0:.1f} -> {100 * acc:.1f}  "
              f"balanced accuracy {100 * bacc0:.1f} -> {100 * bacc:.1f}")
        for weight, table in tables.items():
            print(f"   w {weight:.1f} " + "  ".join(f"{t:+.2f}:{100 * a:.1f}/{100 * b:.1f}" for t, (a, b) in table.items()))
        cal[kind] = {"tau": c.tau_, "class_weight": [round(float(x), 6) for x in c.class_weight_],
                     "val_acc": acc, "val_balanced_acc": bacc, "val_acc_raw": acc0, "val_balanced_acc_raw": bacc0}
    cal["knn"]["softmax_weight"] = knn.softmax_weight_
    if not args.dry_run:
        card = json.loads(model.card_path.read_text())
        card["calibration"] = cal
        model.card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"written to {model.card_path}")


if __name__ == "__main__":
    main()
