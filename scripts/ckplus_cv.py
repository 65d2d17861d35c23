"""10-fold subject-independent cross-validation on CK+48 for a training config.

    python scripts/ckplus_cv.py [CONFIG] [--folds 10] [--only K ...] [--json]

Each fold runs the config with `data.fold` = k: the held-out fold's subjects are never trained
on. The default config, train/configs/v2_ckplus.json, is the shipped model's last stage (FER+
Training plus CK+, warm-started from the FER+ stage that never saw CK+), so the CV measures the
shipped recipe; train/configs/ckplus_finetune.json fine-tunes on CK+ alone. No selection is made
on the held-out fold (last epoch). Scores, pooled over the folds: softmax accuracy, KNN(K=11)
with the training subjects' CK+ faces as reference, and per-class recall of both.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferindex.analysis.knn import KNNClassifier  # noqa: E402
from ferindex.data.ckplus import load_ckplus, subject_folds  # noqa: E402
from ferindex.evaluation import per_class  # noqa: E402
from ferindex.embed import ExpressionModel  # noqa: E402
from ferindex.nn.model import build_model  # noqa: E402


def fold_model(run: Path, cfg: dict) -> ExpressionModel:
    """The fold's trained network (best.pt = last epoch), wrapped like a shipped model."""
    card = json.loads(Path(cfg["init"]).with_suffix(".json").read_text()) if cfg.get("init") else None
    arch = (card or cfg)["arch"] | {"n_classes": 8}
    net = build_model(arch)
    net.load_state_dict(torch.load(run / "best.pt", map_location="cpu"))
    base = card or {"classes": [], "arch": arch, "input": {"size": 48, "flip_tta": cfg.get("flip_tta", False)}}
    return ExpressionModel(base | {"arch": arch}, net, run / "card.json", run.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, nargs="?", default=ROOT / "train/configs/v2_ckplus.json")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--only", type=int, nargs="*", default=None, help="run these folds (others are read if done)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = json.loads(args.config.read_text())
    ck = load_ckplus()
    folds = subject_folds(ck.groups, args.folds, 0)
    truth, soft_p, knn_p, rows = [], [], [], []
    for k, fold in enumerate(folds):
        out = ROOT / "runs" / "ckplus_cv" / args.config.stem / f"fold{k}"
        if args.only is None or k in args.only or not (out / "best.pt").is_file():
            subprocess.run([sys.executable, str(ROOT / "train/train.py"), str(args.config), "--out", str(out), "--set",
                            f"data.fold={k}", f"data.n_folds={args.folds}", f"threads={args.threads}"],
                           check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        model = fold_model(out, cfg)
        rest = np.setdiff1d(np.arange(len(ck)), fold)
        z_rest = model.embed(ck.images[rest])
        z, p = model.embed_and_proba(ck.images[fold], calibrated=False)
        votes = KNNClassifier(k=11, metric=model.metric).fit(z_rest, ck.labels[rest], classes=np.arange(8)).predict_proba(z)
        truth.append(ck.labels[fold]), soft_p.append(p), knn_p.append(votes)
        rows.append({"fold": k, "softmax_acc": float((p.argmax(1) == ck.labels[fold]).mean()),
                     "knn11_acc": float((votes.argmax(1) == ck.labels[fold]).mean())})
        print(f"fold {k}: softmax {100 * rows[-1]['softmax_acc']:.1f}  KNN {100 * rows[-1]['knn11_acc']:.1f}", file=sys.stderr)
    y = np.concatenate(truth)
    classes = ck.classes
    present = [c for i, c in enumerate(classes) if np.any(y == i)]
    summary = {"config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
               "folds": rows, **{f"{m}_{s}": float(getattr(np, s)([r[m] for r in rows]))
                                 for m in ("softmax_acc", "knn11_acc") for s in ("mean", "std")},
               "pooled": {name: per_class(y, np.concatenate(p), classes) for name, p in (("softmax", soft_p), ("knn11", knn_p))}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"CK+48 {args.folds}-fold subject CV ({summary['config']}): softmax {100 * summary['softmax_acc_mean']:.1f} "
          f"± {100 * summary['softmax_acc_std']:.1f} %, KNN(K=11) {100 * summary['knn11_acc_mean']:.1f} "
          f"± {100 * summary['knn11_acc_std']:.1f} %")
    for name, res in summary["pooled"].items():
        print(f"  {name} pooled: accuracy {100 * res['acc']:.1f} %, recall per class: "
              + ", ".join(f"{c} {100 * res['recall'][c]:.1f}" for c in present))


if __name__ == "__main__":
    main()
