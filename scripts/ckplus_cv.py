"""10-fold subject-independent cross-validation on CK+48 for a training config.

    python scripts/ckplus_cv.py [train/configs/ckplus_finetune.json] [--folds 10] [--json]

Each fold trains the config on the other nine folds' subjects (by default fine-tuning the
shipped FER+ model with SGM + identity-aware (N+M)-tuple clusters, paper 001's setting) and
scores the held-out subjects: softmax accuracy and KNN(K=11) accuracy with the training folds as
reference. No subject is in two folds; no selection is made on the held-out fold (last epoch).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, nargs="?", default=ROOT / "train/configs/ckplus_finetune.json")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for k in range(args.folds):
        out = ROOT / "runs" / "ckplus_cv" / args.config.stem / f"fold{k}"
        subprocess.run([sys.executable, str(ROOT / "train/train.py"), str(args.config), "--out", str(out), "--set",
                        f'data={json.dumps({"name": "ckplus", "fold": k, "n_folds": args.folds})}',
                        f"threads={args.threads}"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        last = json.loads((out / "log.jsonl").read_text().strip().splitlines()[-1])
        rows.append({"fold": k, "softmax_acc": last["val_acc"], "knn11_acc": last["val_knn"]})
        print(f"fold {k}: softmax {100 * last['val_acc']:.1f}  KNN {100 * last['val_knn']:.1f}", file=sys.stderr)
    summary = {"config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
               "folds": rows, **{f"{m}_{s}": float(getattr(np, s)([r[m] for r in rows]))
                                 for m in ("softmax_acc", "knn11_acc") for s in ("mean", "std")}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"CK+48 {args.folds}-fold subject CV ({summary['config']}): softmax {100 * summary['softmax_acc_mean']:.1f} "
              f"± {100 * summary['softmax_acc_std']:.1f} %, KNN(K=11) {100 * summary['knn11_acc_mean']:.1f} "
              f"± {100 * summary['knn11_acc_std']:.1f} %")


if __name__ == "__main__":
    main()
