"""ExpressionNet: backbone -> embedding -> classifier, built from a JSON-able architecture spec so
a model card alone is enough to rebuild the network before loading its safetensors weights."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .backbones import make_backbone
from .heads import EmbeddingHead, TwoBranchHead


class ExpressionNet(nn.Module):
    """Returns (embedding z, class logits) for a dict of input chips."""

    def __init__(self, backbone: str, n_classes: int, dim: int = 64, head: str = "linear",
                 backbone_kw: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = make_backbone(backbone, **(backbone_kw or {}))
        self.inputs: tuple[str, ...] = tuple(self.backbone.inputs)
        self.head_kind = head
        if head == "two_branch":
            self.head = TwoBranchHead(self.backbone.out_dim, dim, n_classes)
        else:
            self.head = EmbeddingHead(self.backbone.out_dim, dim)
            self.classifier = nn.Linear(dim, n_classes)

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        if self.head_kind == "two_branch":
            return self.head(f)
        z = self.head(f)
        return z, self.classifier(z)


def mirror_averaged(net: nn.Module, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding, logits) of faces (B,1,H,W) averaged with their mirror images', in one batch:
    a face and its mirror show the same expression (mirror test-time augmentation)."""
    z, logits = net({"face": torch.cat([face, face.flip(-1)])})
    return sum(z.chunk(2)) / 2, sum(logits.chunk(2)) / 2


def build_model(arch: dict[str, Any]) -> nn.Module:
    """Rebuild a network from a model card's `arch` entry (an ensemble's lists its members)."""
    if "members" in arch:
        from .ensemble import ViewEnsemble

        return ViewEnsemble(arch["members"], arch["views"], arch["n_classes"], arch.get("dim", 64))
    return ExpressionNet(arch["backbone"], arch["n_classes"], arch.get("dim", 64), arch.get("head", "linear"),
                         arch.get("backbone_kw"))
