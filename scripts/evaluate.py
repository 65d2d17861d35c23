"""Evaluate an expression model with the protocol of DESIGN §6 and print one table.

    python scripts/evaluate.py [--model NAME|PATH] [--json] [--quick] [--out docs/eval]
        [--update-card]

--quick skips the FER2013 7-class run (which embeds all Training faces again).
--update-card writes the measured numbers into the model card's "metrics" (what the regression
tests hold the model to).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.embed import load_model  # noqa: E402
from ferindex.evaluation import ckplus_cross, ckplus_subject_cv, fer2013_test, fer_plus_test  # noqa: E402


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("docs/eval"))
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()
    model = load_model(args.model)
    t0 = time.time()
    res = {"model": model.model_id,
           "fer_plus_private_test": fer_plus_test(model, confusion_png=args.out / f"confusion_{model.card['name']}.png"),
           "ckplus_cross_dataset": ckplus_cross(model), "ckplus_10fold_subject_cv": ckplus_subject_cv(model)}
    if not args.quick:
        res["fer2013_private_test"] = fer2013_test(model)
    res["eval_s"] = round(time.time() - t0, 1)
    if args.update_card:
        card = json.loads(model.card_path.read_text())
        card["metrics"] = {**card.get("metrics", {}), **{k: v for k, v in res.items() if k not in ("model", "eval_s")}}
        card["metrics"]["fer_plus_private_test"].pop("confusion_knn", None)
        model.card_path.write_text(json.dumps(card, indent=2) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))
        return
    f = res["fer_plus_private_test"]
    rows = [("FER+ PrivateTest (dedup) n", str(f["n"])), ("  softmax accuracy %", pct(f["softmax_acc"])),
            ("  KNN(K=11) accuracy %", pct(f["knn11_acc"])), ("  NMI (k-means) %", pct(f["nmi"])),
            ("  F1 (k-means) %", pct(f["f1"])), ("  MAP@R %", pct(f["map_at_r"]))]
    rows += [(f"  Recall@{k} / Acc@{k} %", f"{pct(f['recall_at_k'][k])} / {pct(f['acc_at_k'][k])}") for k in f["recall_at_k"]]
    if "fer2013_private_test" in res:
        g = res["fer2013_private_test"]
        rows += [("FER2013 7-class PrivateTest KNN %", f"{pct(g['knn11_acc_all'])} (all {g['n_all']}), "
                  f"{pct(g['knn11_acc_dedup'])} (dedup {g['n_dedup']})")]
    c, cv = res["ckplus_cross_dataset"], res["ckplus_10fold_subject_cv"]
    rows += [("CK+48 cross-dataset KNN / softmax %", f"{pct(c['knn11_acc'])} / {pct(c['softmax_acc'])}"),
             ("CK+48 cross-dataset NMI %", pct(c["nmi"])),
             ("CK+48 10-fold subject CV KNN %", f"{pct(cv['knn11_acc_mean'])} ± {pct(cv['knn11_acc_std'])}")]
    width = max(len(r[0]) for r in rows)
    print(f"model {res['model']}  ({res['eval_s']} s)")
    for name, val in rows:
        print(f"{name:<{width}}  {val}")
    print("confusion (rows true, cols KNN prediction):", *model.classes)
    for name, row in zip(model.classes, f["confusion_knn"]):
        print(f"  {name:<10}", " ".join(f"{v:5d}" for v in row))


if __name__ == "__main__":
    main()
