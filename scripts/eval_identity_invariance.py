"""Identity invariance of the expression embedding, measured on CK+48 (subjects known).

For every face: the share of its 10 nearest neighbours that are the same subject, with the
expression embedding vs dlib's identity descriptor (an identity-invariant expression space
should score far below the identity space, near the chance rate). Then expression Recall@1
(and Acc@10) with same-subject neighbours excluded, so a face cannot score by finding another
frame of its own sequence.

    python scripts/eval_identity_invariance.py [--model NAME_OR_PATH]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ferindex.analysis import metrics
from ferindex.analysis.people import chip_descriptors
from ferindex.data.ckplus import load_ckplus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or card path (default: shipped)")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    from ferindex.embed import load_model

    faces = load_ckplus()
    subjects, labels = faces.groups, faces.labels
    _, counts = np.unique(subjects, return_counts=True)
    chance = float(((counts - 1) * counts).sum() / (len(subjects) * (len(subjects) - 1)))
    t = time.time()
    model = load_model(args.model)
    spaces = {f"expression ({model.model_id})": (model.embed(faces.images), model.metric)}
    t_expr = time.time() - t
    t = time.time()
    spaces["identity (dlib 128-d)"] = (chip_descriptors(faces.images), "euclidean")
    print(f"CK+48: {len(labels)} faces, {len(counts)} subjects; embedded in {t_expr:.1f}s,"
          f" identity descriptors in {time.time() - t:.1f}s")
    print(f"chance rate of a same-subject neighbour: {chance:.3f}")
    print(f"{'space':<40}{f'same subj@{args.k}':>14}{'R@1 other subj':>16}{'Acc@10 other':>14}"
          f"{'R@1 any':>9}")
    for name, (X, metric) in spaces.items():
        share = metrics.same_group_share(X, subjects, k=args.k, metric=metric)
        r1 = metrics.recall_at_k(X, labels, ks=(1,), metric=metric, groups=subjects)[1]
        acc10 = metrics.acc_at_k(X, labels, ks=(10,), metric=metric, groups=subjects)[10]
        r1_any = metrics.recall_at_k(X, labels, ks=(1,), metric=metric)[1]
        print(f"{name:<40}{share:>14.3f}{r1:>16.3f}{acc10:>14.3f}{r1_any:>9.3f}")


if __name__ == "__main__":
    main()
