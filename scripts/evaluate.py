"""Evaluate an expression model with the protocol of DESIGN §6 and print one table.

    python scripts/evaluate.py [--model NAME|PATH] [--json] [--quick] [--out docs/eval]
        [--update-card]

The same as `ferindex eval`, plus --update-card, which writes the measured numbers into the
model card's "metrics" (what the regression tests hold the model to).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.embed import load_model  # noqa: E402
from ferindex.evaluation import card_metrics, evaluate, report_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="skip the FER2013 7-class run")
    ap.add_argument("--out", type=Path, default=Path("docs/eval"), help="where the confusion PNG goes")
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()
    model = load_model(args.model)
    res = evaluate(model, args.quick, args.out)
    if args.update_card:
        card = json.loads(model.card_path.read_text())
        card["metrics"] = {**card.get("metrics", {}), **card_metrics(res)}
        model.card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(res, indent=2) if args.json else "\n".join(report_lines(res, model.classes)))


if __name__ == "__main__":
    main()
