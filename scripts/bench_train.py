"""Training throughput of a config's network on this machine, before committing hours to a run.

Times forward + backward + AdamW steps of one batch (random inputs, so no data is needed) in the
precisions train/train.py can use on the CPU: float32 in NCHW (`"amp": false`), bfloat16 autocast
in NHWC (the default) and, for comparison, float32 in NHWC. Whether bfloat16 pays depends on the
CPU: 2.8x float32 on the AMD EPYC (AVX512-BF16) the first stage of the shipped model was trained
on, about 1.1x on the Intel Xeon (AVX512-BF16, no AMX) of its fine-tune (docs/MODEL.md). A real
epoch is slower still (data augmentation, losses, validation).

    python scripts/bench_train.py [train/configs/default.json] [--batch 128] [--steps 4] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferindex.faces.chips import PARTIAL_SHAPE, REGION_SHAPE  # noqa: E402
from ferindex.nn.model import build_model  # noqa: E402

SETTINGS = [("float32, NCHW", False, torch.contiguous_format), ("bfloat16, NHWC", True, torch.channels_last),
            ("float32, NHWC", False, torch.channels_last)]
CHIP_SHAPES = {"face": (1, 48, 48), "partial": (1, *PARTIAL_SHAPE), "eyes": (1, *REGION_SHAPE), "mouth": (1, *REGION_SHAPE)}


def images_per_s(arch: dict, batch: int, steps: int, amp: bool, fmt: torch.memory_format) -> float:
    """Training images per second for `steps` timed steps after two warm-up steps."""
    torch.manual_seed(0)
    model = build_model(arch).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters())
    x = {k: torch.randn(batch, *CHIP_SHAPES[k]).contiguous(memory_format=fmt) for k in model.inputs}
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            z, logits = model(x)
        loss = logits.float().logsumexp(1).mean() + z.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path, nargs="?", default=Path("train/configs/default.json"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    arch = json.loads(args.config.read_text()).get("arch", {"backbone": "resnet", "backbone_kw": {"width": 0.25}})
    arch = {"dim": 64, "head": "linear", **arch, "n_classes": 8}
    rows = {name: round(images_per_s(arch, args.batch, args.steps, amp, fmt), 1) for name, amp, fmt in SETTINGS}
    if args.json:
        print(json.dumps({"arch": arch, "batch": args.batch, "threads": args.threads, "img_per_s": rows}))
        return
    print(f"{args.config}: {arch['backbone']} {arch.get('backbone_kw', {})}, batch {args.batch}, {args.threads} threads")
    for name, v in rows.items():
        print(f"  {name:<15} {v:7.1f} img/s")


if __name__ == "__main__":
    main()
