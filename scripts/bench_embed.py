"""Cost of embedding a face: the shipped expression model next to the v1 model it replaced,
measured side by side in one run on this CPU (the network's cost depends on its architecture,
not its weights, so v1 is rebuilt from its recorded architecture with random weights).

    python scripts/bench_embed.py [--model NAME|PATH] [--threads 1 2] [--batch 64] [--faces 512] [--json]

Prints ms per face (median of 5 timed runs after a warm-up) for batched album-style embedding
and for a single face (a query), each model as albums are embedded with it: v1 with mirror
test-time augmentation, an ensemble (ferindex/nn/ensemble.py) with each member on its view.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.embed import ExpressionModel, load_model  # noqa: E402
from ferindex.nn.model import build_model  # noqa: E402
from ferindex.nn.precision import cpu_has_native_bf16, cpu_name  # noqa: E402

# the architecture of default-3fb86bd5d14e, the shipped model before v2 (git history has its card)
V1_ARCH = {"backbone": "resnet", "backbone_kw": {"width": 0.5}, "dim": 64, "head": "linear", "n_classes": 8}


def v1_model() -> ExpressionModel:
    card = {"classes": [str(i) for i in range(8)], "arch": V1_ARCH, "input": {"size": 48, "flip_tta": True}}
    return ExpressionModel(card, build_model(V1_ARCH), Path("v1.json"), "v1-resnet18w0.5")


def passes(model: ExpressionModel) -> str:
    """What a face costs in network passes: mirror TTA doubles one network; an ensemble runs each
    member on its view ("both" = face and mirror)."""
    views = getattr(model.net, "views", None)
    if views:
        return " + ".join(f"member {i}: {v}" for i, v in enumerate(views))
    return "face + mirror" if model.flip_tta else "face"


def ms_per_face(model: ExpressionModel, crops: np.ndarray, batch: int) -> float:
    model.embed(crops[:batch], batch_size=batch)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        model.embed(crops, batch_size=batch)
        times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[2] / len(crops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="the model to compare with v1 (default: the shipped one)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--faces", type=int, default=512)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    crops = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    models = {"v1 (default-3fb86bd5d14e architecture)": v1_model()}
    other = load_model(args.model)
    models[f"{'shipped' if args.model is None else 'model'} ({other.model_id})"] = other
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, m in models.items():
            rows.append({"model": name, "threads": threads, "passes": passes(m),
                         "batched_ms": ms_per_face(m, crops, args.batch), "single_ms": ms_per_face(m, crops[:32], 1)})
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(),
               "native_bf16": cpu_has_native_bf16(), "python": platform.python_version(), "torch": torch.__version__}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(f"{machine['cpu']}, {machine['cores']} cores, native bf16: {machine['native_bf16']}, torch {machine['torch']}")
    print(f"{'model':48s} {'threads':>7s} {'batch of ' + str(args.batch):>12s} {'one face':>9s}  (ms per face)  passes")
    for r in rows:
        print(f"{r['model']:48s} {r['threads']:7d} {r['batched_ms']:12.2f} {r['single_ms']:9.2f}  {r['passes']}")


if __name__ == "__main__":
    main()
