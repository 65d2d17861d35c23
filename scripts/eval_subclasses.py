"""Does recursive EM sub-class discovery (paper 003, Alg. 2) recover known structure?

Merge two FER+ classes into one label, split that label's expression embeddings with a
2-component Gaussian mixture (one level), and print the NMI between the parts and the true
classes. Faces: FER+ PrivateTest (deduplicated against Training), embedded by the shipped model.

    python scripts/eval_subclasses.py [--model NAME_OR_PATH] [--split test]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ferindex.analysis.subclasses import recovery_nmi
from ferindex.data.fer import load_fer
from ferindex.embed import load_model

PAIRS = [("surprise", "fear"), ("anger", "disgust"), ("happiness", "neutral"),
         ("happiness", "sadness"), ("neutral", "sadness")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or card path (default: shipped)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--seeds", type=int, default=3, help="EM restarts with different seeds")
    args = ap.parse_args()

    model = load_model(args.model)
    faces = load_fer(args.split)
    t = time.time()
    X = model.embed(faces.images)
    print(f"model {model.model_id}: embedded {len(X)} FER+ {args.split} faces in {time.time() - t:.1f}s")
    names = np.asarray(faces.classes)[faces.labels]
    print(f"{'merged pair':<24}{'n':>6}{'NMI (GMM k=2)':>16}{'NMI bic':>10}")
    for a, b in PAIRS:
        fixed = [recovery_nmi(X, names, (a, b), 2, seed=s)[0] for s in range(args.seeds)]
        bic, rows = recovery_nmi(X, names, (a, b), "bic", seed=0)
        print(f"{a + ' + ' + b:<24}{len(rows):>6}{np.mean(fixed):>10.3f} ±{np.std(fixed):.3f}{bic:>10.3f}")


if __name__ == "__main__":
    main()
