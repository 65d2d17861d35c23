"""Deep metric losses of the four papers, all with the signature
``forward(z, y, target=None, ids=None) -> scalar`` (docs/ARCHITECTURE.md), and a registry so
training scripts and model cards can name a loss by a short string."""
from __future__ import annotations

from torch import nn

from ferindex.nn.losses.emlf import EMLFLoss
from ferindex.nn.losses.five_tuple import FiveTupleLoss
from ferindex.nn.losses.nm_tuple import AdaptiveThreshold, NMTupleClustersLoss
from ferindex.nn.losses.sgm import SGMLoss
from ferindex.nn.losses.triplet import BatchHardTripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "sgm": SGMLoss,  # paper 003
    "emlf": EMLFLoss,  # paper 000
    "triplet": BatchHardTripletLoss,  # paper 003 baseline / 004
    "nm_tuple": NMTupleClustersLoss,  # paper 001
    "five_tuple": FiveTupleLoss,  # paper 004
}


def make_loss(name: str, **kw) -> nn.Module:
    """Instantiate a registered loss by name; keyword arguments go to its constructor."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown metric loss {name!r}; choose one of {sorted(LOSSES)}") from None
    return cls(**kw)


__all__ = [
    "LOSSES",
    "make_loss",
    "AdaptiveThreshold",
    "BatchHardTripletLoss",
    "EMLFLoss",
    "FiveTupleLoss",
    "NMTupleClustersLoss",
    "SGMLoss",
]
