"""How accurate must a clustering of FER+ PrivateTest be to reach a given NMI?

    python scripts/nmi_vs_accuracy.py [--model NAME_OR_PATH] [--target 0.70]

Starts from the model's softmax labelling of the test faces (dedup) and corrects a growing random
share of its mistakes; prints the accuracy and NMI of each labelling. NMI depends on how the
errors fall as well as how many there are, so this keeps the model's own confusions and only
thins them out. Answers "why is NMI low?" for a model whose k-means NMI trails its accuracy.
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from ferindex import load_model
from ferindex.data.fer import load_fer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--target", type=float, default=0.70)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    model = load_model(args.model)
    test = load_fer("test", "ferplus")
    _, p = model.embed_and_proba(test.images)
    y, pred = test.labels, p.argmax(1)
    wrong = np.flatnonzero(pred != y)
    rng = np.random.default_rng(0)
    print(f"model {model.model_id}, FER+ PrivateTest dedup n={len(y)}")
    print(f"{'errors fixed':>12}  {'accuracy %':>10}  {'NMI %':>6}")
    crossed = None
    for share in np.linspace(0, 1, 21):
        runs = []
        for _ in range(args.repeats):
            q = pred.copy()
            fix = rng.choice(wrong, int(round(share * len(wrong))), replace=False)
            q[fix] = y[fix]
            runs.append(((q == y).mean(), normalized_mutual_info_score(y, q, average_method="arithmetic")))
        acc, nmi = np.mean(runs, axis=0)
        print(f"{100 * share:>11.0f}%  {100 * acc:>10.1f}  {100 * nmi:>6.1f}")
        if crossed is None and nmi >= args.target:
            crossed = acc
    print(f"NMI {100 * args.target:.0f} first reached at {100 * crossed:.1f} % accuracy" if crossed is not None
          else f"NMI {100 * args.target:.0f} not reached")


if __name__ == "__main__":
    main()
