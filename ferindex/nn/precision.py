"""Pick the training precision for the machine at hand.

bfloat16 autocast is 2-3x float32 on CPUs with native bf16 instructions (AVX512-BF16, AMX), about
equal on some (an Intel Xeon measured 1.1x), and ~10x *slower* on CPUs without them (AVX2 only:
most laptops, many servers), where oneDNN emulates it. So the choice is measured, never assumed:
without the instructions float32 is used outright; with them a few training steps of the real
model are timed in both precisions and the faster one wins.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (False where it cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_name() -> str:
    """The CPU's model name (platform.processor() is empty on most Linux systems)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_step(step: Callable[[], None], repeats: int = 3) -> float:
    """Median seconds of `step` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bf16_is_faster(step_bf16: Callable[[], None], step_fp32: Callable[[], None], margin: float = 1.1) -> bool:
    """Whether bf16 autocast beats float32 by `margin` on this CPU (measured only where the CPU
    has native bf16; elsewhere emulation makes the answer no)."""
    if not cpu_has_native_bf16():
        return False
    return time_step(step_fp32) > margin * time_step(step_bf16)
