"""The precision and layout a run trains and validates in, and the passes that use it outside the
optimisation steps (embedding for validation, BatchNorm refresh for averaged weights)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ferindex.data.inputs import to_tensors
from ferindex.nn.precision import bf16_is_faster


def precision(device: torch.device) -> tuple[torch.dtype, torch.memory_format]:
    """The autocast dtype and tensor layout for `device`: float16 on CUDA; bfloat16 on the CPU,
    with NHWC in either precision there (oneDNN's convolutions want channels-last: 1.1-1.3x in
    float32 as well)."""
    if device.type == "cuda":
        return torch.float16, torch.contiguous_format
    return torch.bfloat16, torch.channels_last


def choose_amp(setting: bool | str, device: torch.device, model: nn.Module, x: dict[str, torch.Tensor]) -> bool:
    """Mixed precision on or off: `setting` true/false, or "auto": always on CUDA; on the CPU only
    where bf16 autocast measures faster than float32 on this model (ferindex.nn.precision)."""
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return True
    probe = copy.deepcopy(model)  # the timing steps must not touch the real model's BN statistics

    def step(bf16: bool):
        def run() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                z, logits = probe(x)
            (z.float().sum() + logits.float().sum()).backward()
            probe.zero_grad(set_to_none=True)
        return run

    return bf16_is_faster(step(True), step(False))


def in_layout(x: dict[str, torch.Tensor], fmt: torch.memory_format) -> dict[str, torch.Tensor]:
    """Every input tensor in the layout the model was moved to."""
    return {k: v.contiguous(memory_format=fmt) for k, v in x.items()}


@torch.no_grad()
def embed_all(model, chips: dict[str, np.ndarray], device, bs: int = 512, amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and class probabilities of every chip, in the training precision and layout."""
    model.eval()
    n = len(next(iter(chips.values())))
    zs, ps = [], []
    dtype, fmt = precision(device)
    for i in range(0, n, bs):
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            z, logits = model(in_layout(to_tensors(chips, slice(i, i + bs), device), fmt))
        zs.append(z.float().cpu())
        ps.append(torch.softmax(logits.float(), 1).cpu())
    return torch.cat(zs).numpy(), torch.cat(ps).numpy()


@torch.no_grad()
def refresh_bn(model: nn.Module, chips: dict[str, np.ndarray], device, dtype, fmt, amp: bool, bs: int = 512) -> None:
    """Recompute BatchNorm statistics as a cumulative average over `chips`: averaged weights
    (SWA) need statistics of their own, not the running ones of the last trained model."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = len(next(iter(chips.values())))
    for i in range(0, n, bs):
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            model(in_layout(to_tensors(chips, slice(i, i + bs), device), fmt))
    for m in bns:
        m.momentum = 0.1
