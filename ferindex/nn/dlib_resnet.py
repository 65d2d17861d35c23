"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) in PyTorch.

It is the only face-pretrained deep network available offline (it ships inside the
`face_recognition_models` wheel, trained on about 3 million faces), and its middle stages carry
expression information (`shared/notes/dlib-face-resnet.md`): fine-tuned, it is the expression
backbone `dlib_resnet`, and the same trunk gives the 128-d identity descriptor.

The reader follows dlib's serialisation (`dlib/dnn/core.h`, `layers.h`): layers are written
input-first; an integer is a header byte (byte count, bit 0x80 = negative) then little-endian
bytes; a tensor is version 2, n, k, nr, nc, then float32. Two dlib details matter for exact
outputs: stride-2 convolutions and pools use no padding, and `add_prev` zero-pads the smaller
input (fewer channels or fewer pixels) top-left aligned to the larger one.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.inputs import MEAN, STD

DLIB_MEAN = (122.782, 117.001, 104.298)  # input_rgb_image_sized: x = (pixel - mean) / 256
# (channels, blocks, first block downsamples) of alevel4 ... alevel0 in dnn_face_recognition_ex.cpp
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


def _read_int(b: bytes, pos: int) -> tuple[int, int]:
    head = b[pos]
    n = head & 0x0F
    val = int.from_bytes(b[pos + 1: pos + 1 + n], "little")
    return (-val if head & 0x80 else val), pos + 1 + n


def _read_tensor(b: bytes, pos: int) -> tuple[np.ndarray, int]:
    version, pos = _read_int(b, pos)
    if version != 2:
        raise ValueError(f"unexpected dlib tensor version {version} at byte {pos}")
    dims = []
    for _ in range(4):
        d, pos = _read_int(b, pos)
        dims.append(d)
    count = int(np.prod(dims))
    arr = np.frombuffer(b, dtype="<f4", count=count, offset=pos).copy()
    return arr, pos + 4 * count


def read_dlib_resnet(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The learned tensors in forward order: "con" [(filters (nf,k,nr,nc), biases)],
    "affine" [(gamma, beta)], "fc" [(256,128) matrix]."""
    b = Path(path).read_bytes()
    out: dict[str, list] = {"con": [], "affine": [], "fc": []}
    for m in re.finditer(rb"\x01(\x05con_4|\x07affine_|\x04fc_2)", b):
        name, pos = m.group(1)[1:].decode(), m.end()
        if name == "con_4":
            params, pos = _read_tensor(b, pos)
            nf, pos = _read_int(b, pos)
            nr, pos = _read_int(b, pos)
            nc, pos = _read_int(b, pos)
            k = (params.size - nf) // (nf * nr * nc)
            out["con"].append((params[: nf * k * nr * nc].reshape(nf, k, nr, nc), params[nf * k * nr * nc:]))
        elif name == "affine_":
            params, _ = _read_tensor(b, pos)
            half = params.size // 2
            out["affine"].append((params[:half], params[half:]))
        else:
            n_out, pos = _read_int(b, pos)
            n_in, pos = _read_int(b, pos)
            params, _ = _read_tensor(b, pos)
            out["fc"].append(params.reshape(n_in, n_out))
    if len(out["con"]) != 29 or len(out["affine"]) != 29 or len(out["fc"]) != 1:
        raise ValueError(f"{path}: not dlib's face-recognition ResNet "
                         f"({len(out['con'])} conv, {len(out['affine'])} affine, {len(out['fc'])} fc layers)")
    return out


def default_dat() -> Path:
    """The model file inside the face_recognition_models wheel (found without pkg_resources)."""
    from ..faces.dlib_models import RESNET, model_path

    return model_path(RESNET)


class Affine(nn.Module):
    """dlib's `affine_` layer: a frozen batch norm, y = gamma * x + beta per channel. Kept as a
    trainable scale and shift (no batch statistics), as dlib itself runs it."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(c))
        self.beta = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def _pad_to(x: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
    """Zero-pad channels and pixels at the end (dlib's top-left aligned add_prev)."""
    return nn.functional.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))


class DlibBlock(nn.Module):
    """ares / ares_down: relu(affine(con3(relu(affine(con3(x))))) + skip), where the skip of a
    downsampling block is a 2x2 average pool and the sum is taken at the larger size."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.bn1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        skip = nn.functional.avg_pool2d(x, 2, 2) if self.down else x
        if skip.shape != y.shape:
            c, h, w = (max(a, b) for a, b in zip(y.shape[1:], skip.shape[1:]))
            y, skip = _pad_to(y, c, h, w), _pad_to(skip, c, h, w)
        return torch.relu(y + skip)


class DlibResNet(nn.Module):
    """The 29-layer face-recognition ResNet. `forward` takes RGB in dlib's normalisation and
    returns the pooled 256-d trunk feature; `descriptor` adds the 128-d identity projection."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 0)
        self.bn1 = Affine(32)
        blocks, cin = [], 32
        for cout, n, down in STAGES:
            for j in range(n):
                blocks.append(DlibBlock(cin, cout, down and j == 0))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean((2, 3))

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self(x))

    @staticmethod
    def normalize(rgb: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) RGB in 0..255 -> dlib's input scale."""
        return (rgb - torch.tensor(DLIB_MEAN, device=rgb.device).view(1, 3, 1, 1)) / 256.0

    def load_dlib(self, path: str | Path | None = None) -> "DlibResNet":
        """Copy the weights of dlib's .dat file (the wheel's copy by default) into this module."""
        w = read_dlib_resnet(path or default_dat())
        convs = [self.conv1] + [c for blk in self.blocks for c in (blk.conv1, blk.conv2)]
        affines = [self.bn1] + [a for blk in self.blocks for a in (blk.bn1, blk.bn2)]
        with torch.no_grad():
            for mod, (f, bias) in zip(convs, w["con"]):
                if tuple(mod.weight.shape) != f.shape:
                    raise ValueError(f"dlib layer shape {f.shape} does not match {tuple(mod.weight.shape)}")
                mod.weight.copy_(torch.from_numpy(f))
                mod.bias.copy_(torch.from_numpy(bias))
            for mod, (g, b) in zip(affines, w["affine"]):
                mod.gamma.copy_(torch.from_numpy(g))
                mod.beta.copy_(torch.from_numpy(b))
            self.fc.weight.copy_(torch.from_numpy(w["fc"][0].T))
        return self


class DlibExpressionBackbone(nn.Module):
    """The dlib face ResNet as an expression backbone for ferindex's 48x48 gray chips: the chip
    is upsampled to `size` px (dlib saw faces of about 100 px; 112 keeps every stage's map at
    least 2x2) and copied to the three colour channels. The feature is the average-pooled output
    of the 128-channel stage (where frozen features carry the most expression information) next
    to the final 256-channel one, batch-normalised. `pretrained` reads dlib's weights (training only: an exported
    model's safetensors hold the fine-tuned ones)."""

    inputs = ("face",)

    def __init__(self, size: int = 112, pretrained: bool = False) -> None:
        super().__init__()
        self.size = size
        self.net = DlibResNet()
        if pretrained:
            self.net.load_dlib()
        del self.net.fc  # the identity projection is not part of the expression model
        self.split = sum(n for _, n, _ in STAGES[:3])  # blocks up to and including the 128-channel stage
        self.out_dim = 128 + 256
        # dlib's trunk has no batch norm and its pooled activations are large (logits of ~20 at
        # the start); normalising the feature lets the new heads start from a sane scale
        self.norm = nn.BatchNorm1d(self.out_dim)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        pix = (x["face"] * STD + MEAN) * 255.0  # back to pixels, as dlib expects
        pix = nn.functional.interpolate(pix, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h = self.net.stem(DlibResNet.normalize(pix.expand(-1, 3, -1, -1)))  # gray: R = G = B
        mid = self.net.blocks[: self.split](h)
        out = self.net.blocks[self.split:](mid)
        return self.norm(torch.cat([mid.mean((2, 3)), out.mean((2, 3))], 1))
