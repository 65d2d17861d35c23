"""Write each network of a view ensemble as a model of its own (card, weights, reference bank).

    python scripts/split_ensemble.py [--model default] [--out artifacts/member]

Writes OUT0.*, OUT1.*, ...: each member with its architecture, training record and mirror TTA,
and a bank of the shipped bank's faces (FER+ Training and all of CK+48, each distinct face once)
embedded by that member. The members of the shipped ensemble are then a warm start for
train/train.py and candidates for scripts/make_ensemble.py, without retraining them (the
second one took 9.2 h of CPU training).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.data.mixed import bank_faces  # noqa: E402
from ferindex.embed import ensemble_member, export_model, load_model  # noqa: E402
from ferindex.errors import ModelError  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="the ensemble's card or name (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("artifacts/member"), help="path stem; member i goes to OUTi.*")
    args = ap.parse_args()
    model = load_model(args.model)
    try:  # a model that is not an ensemble is refused by ensemble_member, before any data is read
        members = [ensemble_member(model, i) for i in range(len(model.card["arch"].get("members", [])) or 1)]
    except ModelError as e:
        raise SystemExit(f"error: {e}") from None
    bank_x, bank_y = bank_faces()
    for i, (net, card) in enumerate(members):
        member = export_model(net, card, bank_x, bank_y, args.out.with_name(f"{args.out.name}{i}"))
        print(f"member {i}: {member.card_path} ({member.model_id})", flush=True)


if __name__ == "__main__":
    main()
