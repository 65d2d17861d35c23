"""Join trained expression models into one ViewEnsemble model (ferindex/nn/ensemble.py).

    python scripts/make_ensemble.py --members A.json B.json [--views face mirror] [--dim 64]
        [--out artifacts/ensemble]

Prints, on FER+ PublicTest (the selection split, dedup; PrivateTest is never looked at), with the
full reference bank: each member alone as shipped (mirror TTA) and the ensemble with every view
assignment, the joint embedding raw and projected to --dim: KNN(K=11) accuracy and balanced
accuracy (mean per-class recall), softmax accuracy and balanced accuracy, and forward passes per
face. Then writes the ensemble with the given --views: the members' weights, the projection (PCA
of the bank faces' joint embeddings, each member scaled to unit RMS spread first, so neither
dominates by scale), the card and a reference bank of the same faces (FER+ Training and all of
CK+48, each distinct face once) embedded by the ensemble itself. Calibrate it afterwards
(scripts/calibrate.py).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.analysis.knn import KNNClassifier  # noqa: E402
from ferindex.data.fer import load_fer  # noqa: E402
from ferindex.data.inputs import make_chips, to_tensors  # noqa: E402
from ferindex.data.mixed import bank_faces  # noqa: E402
from ferindex.embed import ExpressionModel, export_model, load_model  # noqa: E402
from ferindex.evaluation import K, per_class  # noqa: E402
from ferindex.nn.ensemble import ViewEnsemble  # noqa: E402

PASSES = {"face": 1, "mirror": 1, "both": 2}


@torch.inference_mode()
def member_views(model: ExpressionModel, images: np.ndarray, bs: int = 512) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(embeddings, logits) of the faces and of their mirror images, computed once per member."""
    chips = make_chips(images, ("face",))
    out: dict[str, list] = {"face": [], "mirror": []}
    for i in range(0, len(images), bs):
        x = to_tensors(chips, slice(i, i + bs))["face"]
        for view, v in (("face", x), ("mirror", x.flip(-1))):
            out[view].append(model.net({"face": v.contiguous(memory_format=torch.channels_last)}))
    views = {k: (torch.cat([z for z, _ in o]).numpy(), torch.cat([lg for _, lg in o]).numpy()) for k, o in out.items()}
    views["both"] = tuple((a + b) / 2 for a, b in zip(views["face"], views["mirror"]))
    return views


def pca_projection(joint: np.ndarray, scales: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight (dim, D), bias (dim,)) of x -> PCA_dim((x / scales) - mean): a rotation onto the
    joint embedding's main axes, so Euclidean distances are kept as far as `dim` allows."""
    x = joint / scales
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    w = vt[:dim] / scales[None, :]
    return w.astype(np.float32), (-vt[:dim] @ mean).astype(np.float32)


def scores(bank_z: np.ndarray, bank_y: np.ndarray, z: np.ndarray, logits: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    knn = KNNClassifier(k=K).fit(bank_z, bank_y, classes=np.arange(len(classes))).predict_proba(z)
    k, s = per_class(y, knn, classes), per_class(y, logits, classes)
    return {"knn": k["acc"], "knn_bal": k["mean_recall"], "softmax": s["acc"], "softmax_bal": s["mean_recall"]}


def joined(parts: list[np.ndarray], scales: np.ndarray, proj: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """The members' embeddings as the ensemble would give them: concatenated (each divided by its
    member's scale) or projected."""
    x = np.concatenate(parts, 1)
    return x / scales if proj is None else x @ proj[0].T + proj[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", nargs="+", required=True, help="model cards (or names) to join")
    ap.add_argument("--views", nargs="+", default=None, help="one per member: face, mirror or both (default: face mirror)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("artifacts/ensemble"), help="path stem of the written model")
    args = ap.parse_args()
    members = [load_model(m) for m in args.members]
    views = args.views or ["face", "mirror", "both", "both"][:len(members)]
    classes = members[0].classes
    if any(m.classes != classes for m in members):
        raise SystemExit("members disagree on the classes")

    bank_x, bank_y = bank_faces()
    val = load_fer("val", "ferplus")
    print(f"bank: {len(bank_x)} distinct training faces; PublicTest (dedup): {len(val)} faces", flush=True)
    bank = [member_views(m, bank_x) for m in members]
    test = [member_views(m, val.images) for m in members]
    dims = [m.dim for m in members]
    spread = [float(np.sqrt(((b["both"][0] - b["both"][0].mean(0)) ** 2).sum(1).mean())) for b in bank]

    rows = []
    for i, m in enumerate(members):
        rows.append((f"member {i} ({m.model_id}), both views", 2,
                     scores(bank[i]["both"][0], bank_y, test[i]["both"][0], test[i]["both"][1], val.labels, classes)))
    for vs in itertools.product(("face", "mirror", "both"), repeat=len(members)):
        scales = np.concatenate([np.full(d, s) for d, s in zip(dims, spread)])
        bz = [b[v][0] for b, v in zip(bank, vs)]
        proj = pca_projection(np.concatenate(bz, 1), scales, args.dim)
        logits = np.mean([t[v][1] for t, v in zip(test, vs)], 0)
        tz = [t[v][0] for t, v in zip(test, vs)]
        for name, p in (("concatenated", None), (f"PCA {args.dim}", proj)):
            rows.append((f"ensemble {'/'.join(vs)}, {name}", sum(PASSES[v] for v in vs),
                         scores(joined(bz, scales, p), bank_y, joined(tz, scales, p), logits, val.labels, classes)))
    print(f"{'FER+ PublicTest (dedup), full bank':60s} passes  KNN acc/bal  softmax acc/bal")
    for name, passes, s in rows:
        print(f"{name:60s} {passes:5d}  {100 * s['knn']:.1f} / {100 * s['knn_bal']:.1f}   "
              f"{100 * s['softmax']:.1f} / {100 * s['softmax_bal']:.1f}", flush=True)

    scales = np.concatenate([np.full(d, s) for d, s in zip(dims, spread)])
    proj = pca_projection(np.concatenate([b[v][0] for b, v in zip(bank, views)], 1), scales, args.dim)
    arch = {"members": [{k: v for k, v in m.card["arch"].items() if k != "n_classes"} for m in members],
            "views": views, "dim": args.dim, "n_classes": len(classes)}
    net = ViewEnsemble(arch["members"], views, len(classes), args.dim)
    for dst, m in zip(net.members, members):
        dst.load_state_dict(m.net.state_dict())
    with torch.no_grad():
        net.proj.weight.copy_(torch.from_numpy(proj[0]))
        net.proj.bias.copy_(torch.from_numpy(proj[1]))
    first = members[0].card
    card = {"name": first.get("name", "default"), "classes": classes, "arch": arch,
            "input": {**first["input"], "flip_tta": False}, "metric": "euclidean",
            "training": {"ensemble": {"command": "python " + " ".join(sys.argv), "views": views,
                                      "projection": f"PCA to {args.dim} of the bank faces' joint embeddings, members scaled to unit RMS spread",
                                      "member_spread": spread},
                         "members": [{"model_id": m.model_id, **m.card.get("training", {})} for m in members]}}
    export_model(net.eval(), card, bank_x, bank_y, args.out)
    print(f"exported to {args.out} ({len(members)} members, views {views}, dim {args.dim})")


if __name__ == "__main__":
    main()
