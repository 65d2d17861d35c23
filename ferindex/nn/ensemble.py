"""Several expression networks as one model, at the cost of one network with mirror TTA.

A shipped model embeds every album face, so its cost is paid 20,000 times on a 20,000-face
album. Mirror test-time augmentation spends a second forward pass on the mirrored face; an
ensemble of two independently trained networks, one seeing the face and one its mirror image,
spends the same two passes and averages two different models' errors instead of one model's
twice. The members' embeddings are concatenated and projected back to `dim` (a PCA of the
training faces' joint embeddings, fitted by `scripts/make_ensemble.py`), so indexes, banks and
every analysis keep the shipped dimension; the logits are averaged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .model import build_model, mirror_averaged

VIEWS = ("face", "mirror", "both")  # what a member sees: the face, its mirror image, or both averaged


class ViewEnsemble(nn.Module):
    """Returns (projected joint embedding, mean logits) like an ExpressionNet."""

    inputs = ("face",)

    def __init__(self, members: list[dict[str, Any]], views: list[str], n_classes: int, dim: int = 64) -> None:
        super().__init__()
        if len(members) != len(views) or not members:
            raise ValueError(f"an ensemble needs one view per member, got {len(members)} members and {len(views)} views")
        if bad := [v for v in views if v not in VIEWS]:
            raise ValueError(f"unknown ensemble view(s) {bad}; expected {', '.join(VIEWS)}")
        self.members = nn.ModuleList(build_model({**m, "n_classes": n_classes}) for m in members)
        if any(net.inputs != ("face",) for net in self.members):
            raise ValueError("ensemble members must be whole-face networks")
        self.views = list(views)
        self.proj = nn.Linear(sum(m.get("dim", 64) for m in members), dim)

    def member_outputs(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each member's (embedding, logits) for its view of faces x (B,1,H,W)."""
        return [mirror_averaged(net, x) if view == "both" else net({"face": x.flip(-1) if view == "mirror" else x})
                for net, view in zip(self.members, self.views)]

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = self.member_outputs(x["face"])
        return self.proj(torch.cat([z for z, _ in outs], 1)), torch.stack([lg for _, lg in outs]).mean(0)
