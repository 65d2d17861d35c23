"""Dynamic loss weights of paper 004 (DML-Net), eq 8, for joint training of several losses."""
from __future__ import annotations

import math
from collections import deque


class DynamicLossWeights:
    """lambda_k(t) = K exp(w_k / T) / sum_i exp(w_i / T),  w_k = L_k(t-1) / L_k(t-2)   (eq 8).

    A loss that stopped falling (w_k near 1 or above) gets more weight than one still falling
    fast. As in the paper, L_k(t-1) and L_k(t-2) are averages over ``window`` = 5 batches: the
    mean of the last 5 recorded values and the mean of the 5 before them, so the weights move
    every batch once ``2 * window`` batches have been seen; before that every loss gets K / n
    (what eq 8 gives when all rates are equal). The paper uses K = 2 and T = 2 (Table 1); in the
    DWA rule it borrows from, K is the number of tasks, which is also 2 for ferindex's
    cross-entropy + metric-loss training. The rate is only meaningful for positive losses: when
    the older average is not positive (e.g. a loss that can go negative, like EMLF) w_k is 1.
    """

    def __init__(
        self, names: list[str] | tuple[str, ...], k: float = 2.0, temperature: float = 2.0, window: int = 5
    ) -> None:
        if not names:
            raise ValueError("DynamicLossWeights needs at least one loss name")
        if temperature <= 0 or window < 1:
            raise ValueError(f"temperature must be > 0 and window >= 1, got {temperature}, {window}")
        self.names = list(names)
        self.k = float(k)
        self.temperature = float(temperature)
        self.window = int(window)
        self._history = {n: deque(maxlen=2 * self.window) for n in self.names}

    def update(self, loss_values: dict[str, float]) -> None:
        """Record one batch's loss values (plain floats, e.g. ``loss.item()``)."""
        missing = set(self.names) - set(loss_values)
        if missing:
            raise KeyError(f"loss values missing for {sorted(missing)}")
        for n in self.names:
            v = float(loss_values[n])
            if not math.isfinite(v):
                raise ValueError(f"loss {n!r} is not finite: {v}")
            self._history[n].append(v)

    def state(self) -> dict[str, list[float]]:
        """The recorded loss history (for checkpoints)."""
        return {n: list(h) for n, h in self._history.items()}

    def load_state(self, state: dict[str, list[float]]) -> None:
        """Continue from a checkpoint's history."""
        for n in self.names:
            self._history[n].clear()
            self._history[n].extend(state.get(n, []))

    def rates(self) -> dict[str, float] | None:
        """w_k for each loss, or None while there is not yet 2 * window batches of history."""
        if any(len(h) < 2 * self.window for h in self._history.values()):
            return None
        out = {}
        for n, h in self._history.items():
            values = list(h)
            older = sum(values[: self.window]) / self.window
            recent = sum(values[self.window :]) / self.window
            out[n] = recent / older if older > 0 else 1.0
        return out

    def weights(self) -> dict[str, float]:
        """lambda_k for the next batch; sums to K."""
        rates = self.rates()
        if rates is None:
            return {n: self.k / len(self.names) for n in self.names}
        top = max(rates.values())  # shift for a stable softmax; it cancels in the ratio
        e = {n: math.exp((w - top) / self.temperature) for n, w in rates.items()}
        total = sum(e.values())
        return {n: self.k * v / total for n, v in e.items()}
