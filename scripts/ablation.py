"""Ablation of losses and inputs on one backbone and one short, equal training budget.

    python scripts/ablation.py [--epochs 1] [--steps N] [--threads 2] [--rows ce,sgm,...] [--json]

Each row trains train/configs/default.json with overrides (train/train.py), then reports the
FER+ PublicTest softmax accuracy and KNN(K=11) accuracy of its last epoch (6k Training faces as
the KNN reference), with the training images/s. Results go to runs/ablation/<row>/ and a table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE = {"backbone": "resnet", "backbone_kw": {"width": 0.25}, "dim": 64, "head": "linear"}
ROWS = {
    "ce": {"losses": {}},
    "sgm": {"losses": {"sgm": {"weight": 1.0}}},
    "emlf": {"losses": {"emlf": {"weight": 1.0}}},
    "triplet": {"losses": {"triplet": {"weight": 1.0}}},
    "nm_tuple": {"losses": {"nm_tuple": {"weight": 1.0}}},
    "partial_sgm": {"losses": {"sgm": {"weight": 1.0}}, "arch": {"backbone": "vgg_partial", "dim": 64}},
    "three_channel_sgm": {"losses": {"sgm": {"weight": 1.0}}, "arch": {"backbone": "three_channel", "dim": 64}},
}


def run_row(name: str, epochs: int, threads: int, steps: int | None) -> dict:
    spec = ROWS[name]
    out = ROOT / "runs" / "ablation" / name
    sets = [f"name=ablation_{name}", f"epochs={epochs}", f"threads={threads}",
            f"losses={json.dumps(spec['losses'])}", f"arch={json.dumps(spec.get('arch', FACE))}",
            f"max_steps_per_epoch={json.dumps(steps)}"]
    subprocess.run([sys.executable, str(ROOT / "train" / "train.py"), str(ROOT / "train/configs/default.json"),
                    "--out", str(out), "--set", *sets], check=True, cwd=ROOT)
    last = json.loads((out / "log.jsonl").read_text().strip().splitlines()[-1])
    return {"row": name, "input": spec.get("arch", FACE)["backbone"], "losses": "ce+" + "+".join(spec["losses"]) if spec["losses"] else "ce",
            "val_acc": last["val_acc"], "val_knn": last["val_knn"], "img_per_s": last["img_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="batches per epoch (default: the whole Training set)")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run_row(r, args.epochs, args.threads, args.steps) for r in args.rows.split(",")]
    (ROOT / "runs" / "ablation" / "results.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'row':<18} {'input':<14} {'losses':<12} {'val softmax %':>13} {'val KNN %':>9} {'img/s':>6}")
    for r in results:
        print(f"{r['row']:<18} {r['input']:<14} {r['losses']:<12} {100 * r['val_acc']:>13.1f} {100 * r['val_knn']:>9.1f} {r['img_per_s']:>6.0f}")


if __name__ == "__main__":
    main()
