"""Backbones: feature extractors that map one input chip to a flat feature vector.

Each backbone declares `inputs` (the chip kinds it reads, see ferindex.faces.chips) and `out_dim`.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNetFace(nn.Module):
    """ResNet-18 layout for small grayscale faces; `width` scales the 64-128-256-512 channels so the
    same family runs on a 2-core CPU (width 0.25-0.5) or a GPU (width 1). `stem_stride` 2 runs the
    first stage at 24x24: a quarter of its cost, which buys ~2x the width at the same per-face cost."""

    inputs = ("face",)

    def __init__(self, width: float = 0.5, blocks: tuple[int, ...] = (2, 2, 2, 2), stem_stride: int = 1) -> None:
        super().__init__()
        widths = [max(8, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.stem = conv_bn(1, widths[0], stem_stride)  # no max-pool: 48 px faces are already small
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = cin

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x["face"]))).flatten(1)


class VGGFace(nn.Module):
    """VGG-style stack of conv pairs and pools. With `partial=True` it is the paper-000 network on
    the 30x60 partial image: I(60x30)-C32-C32-P-C64-C64-P-C128-C128-P-FC512-FC256-FC128."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), fc: tuple[int, ...] = (512,),
                 input_name: str = "face", input_hw: tuple[int, int] = (48, 48), dropout: float = 0.3) -> None:
        super().__init__()
        self.inputs = (input_name,)
        convs, cin = [], 1
        for c in channels:
            convs += [conv_bn(cin, c), conv_bn(c, c), nn.MaxPool2d(2)]
            cin = c
        self.convs = nn.Sequential(*convs)
        h, w = input_hw
        flat = cin * (h >> len(channels)) * (w >> len(channels))
        fcs = []
        for f in fc:
            fcs += [nn.Linear(flat, f), nn.BatchNorm1d(f), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            flat = f
        self.fc = nn.Sequential(*fcs)
        self.out_dim = flat

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(self.convs(x[self.inputs[0]]).flatten(1))


class ThreeChannelNet(nn.Module):
    """Paper 004 (DML-Net) multi-channel features: whole face, eye region and mouth region each go
    through their own CNN, then two fully connected fusion layers join them."""

    inputs = ("face", "eyes", "mouth")

    def __init__(self, face_channels: tuple[int, ...] = (32, 64, 128, 256), region_channels: tuple[int, ...] = (32, 64, 128),
                 region_hw: tuple[int, int] = (24, 48), fusion: tuple[int, int] = (512, 256)) -> None:
        super().__init__()
        self.face = VGGFace(face_channels, fc=(), input_name="face")
        self.eyes = VGGFace(region_channels, fc=(), input_name="eyes", input_hw=region_hw)
        self.mouth = VGGFace(region_channels, fc=(), input_name="mouth", input_hw=region_hw)
        cat = self.face.out_dim + self.eyes.out_dim + self.mouth.out_dim
        self.fusion = nn.Sequential(nn.Linear(cat, fusion[0]), nn.BatchNorm1d(fusion[0]), nn.ReLU(inplace=True), nn.Dropout(0.3),
                                    nn.Linear(fusion[0], fusion[1]), nn.BatchNorm1d(fusion[1]), nn.ReLU(inplace=True))
        self.out_dim = fusion[1]

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(torch.cat([self.face(x), self.eyes(x), self.mouth(x)], dim=1))


def make_backbone(name: str, **kw) -> nn.Module:
    """Backbone by config name: resnet, vgg, vgg_partial (paper 000), three_channel (paper 004),
    dlib_resnet (dlib's face-recognition ResNet, face-pretrained)."""
    if name == "resnet":
        return ResNetFace(**kw)
    if name == "vgg":
        return VGGFace(**kw)
    if name == "vgg_partial":
        return VGGFace(channels=(32, 64, 128), fc=(512, 256, 128), input_name="partial", input_hw=(30, 60), **kw)
    if name == "three_channel":
        return ThreeChannelNet(**kw)
    if name == "dlib_resnet":
        from .dlib_resnet import DlibExpressionBackbone

        return DlibExpressionBackbone(**kw)
    raise ValueError(f"unknown backbone {name!r}: use resnet, vgg, vgg_partial, three_channel or dlib_resnet")
