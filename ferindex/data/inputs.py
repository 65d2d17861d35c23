"""Turn aligned 48x48 face crops into the tensors a network reads. Training and inference both go
through here, so an album face is preprocessed exactly like a training face."""
from __future__ import annotations

import math

import numpy as np
import torch

MEAN, STD = 0.5, 0.25  # recorded in every model card's "input" entry


def needs_landmarks(inputs: tuple[str, ...]) -> bool:
    return any(k != "face" for k in inputs)


def make_chips(crops: np.ndarray, inputs: tuple[str, ...], landmarks: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """uint8 arrays per input kind: "face" (N,48,48), "partial" (N,30,60), "eyes"/"mouth" regions.
    Landmarks (N,68,2, in crop pixels) are needed for all but "face"; computed when not given."""
    out: dict[str, np.ndarray] = {}
    if "face" in inputs:
        out["face"] = crops
    if needs_landmarks(inputs):
        from ..faces import chips as fchips  # dlib only when a partial/region model asks for it
        from ..faces.landmarks import fer_landmarks

        if landmarks is None:
            landmarks = fer_landmarks(crops)
        if "partial" in inputs:
            out["partial"] = np.stack([fchips.partial_image(c, l) for c, l in zip(crops, landmarks)])
        if "eyes" in inputs or "mouth" in inputs:
            regs = [fchips.regions(c, l) for c, l in zip(crops, landmarks)]
            for k in ("eyes", "mouth"):
                if k in inputs:
                    out[k] = np.stack([r[k] for r in regs])
    return out


def to_tensors(chips: dict[str, np.ndarray], idx: np.ndarray | slice, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Normalised float tensors (B,1,H,W) for the rows `idx` of each chip array."""
    return {k: ((torch.from_numpy(np.ascontiguousarray(v[idx])).to(device).float() / 255.0 - MEAN) / STD).unsqueeze(1)
            for k, v in chips.items()}


def augment(batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
            erase: float = 0.0, degrade: float = 0.0, jpeg: float = 0.0) -> dict[str, torch.Tensor]:
    """Random flip + small rotation/scale/shift of the whole face, brightness/contrast jitter on every
    chip. Regions get no geometric change: their crops already vary with the landmarks. With
    probability `erase` a random rectangle of the face (2-20 % of its area) is blanked, so the net
    cannot lean on one region alone (random erasing; helps on occluded album faces). With
    probability `degrade` a face is made to look like a small or badly lit album face: shrunk to
    16-40 px and upscaled back (the blur of a small face), and/or given a gamma of 0.6-1.7 (low
    light or overexposure). With probability `jpeg` a face goes through JPEG at quality 10-60,
    the blocking and ringing of shared and re-saved album photos that FER2013's clean crops lack."""
    out = {}
    for k, x in batch.items():
        b = x.shape[0]
        r = lambda *s: torch.rand(*s, generator=generator, device="cpu").to(x.device)  # noqa: E731
        if k == "face":
            flip = (r(b) < 0.5).float() * 2 - 1
            ang = (r(b) - 0.5) * 2 * math.radians(12)
            scale = 1 + (r(b) - 0.5) * 0.2
            tx, ty = (r(b) - 0.5) * 0.16, (r(b) - 0.5) * 0.16
            cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
            theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
            grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = torch.nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)
            if erase > 0:
                x = _erase(x, r, erase)
            if degrade > 0:
                x = _degrade(x, r, degrade)
            if jpeg > 0:
                x = _jpeg(x, r, jpeg)
        contrast = 1 + (r(b, 1, 1, 1) - 0.5) * 0.4
        bright = (r(b, 1, 1, 1) - 0.5) * 0.4
        out[k] = x * contrast + bright
    return out


def _degrade(x: torch.Tensor, r, p: float) -> torch.Tensor:
    """Small-face blur and gamma changes on a share `p` of the (normalised) faces."""
    b, _, h, w = x.shape
    small = int(16 + float(r(1)) * 24)  # one size per batch: a resize is a batch operation
    blur = torch.nn.functional.interpolate(torch.nn.functional.interpolate(
        x, size=(small, small), mode="area"), size=(h, w), mode="bilinear", align_corners=False)
    x = torch.where((r(b) < p / 2).view(b, 1, 1, 1), blur, x)
    pix = ((x * STD + MEAN).clamp(0, 1)) ** torch.exp((r(b, 1, 1, 1) - 0.4) * 1.3)  # gamma 0.6..1.7
    return torch.where((r(b) < p / 2).view(b, 1, 1, 1), (pix - MEAN) / STD, x)


def _jpeg(x: torch.Tensor, r, p: float) -> torch.Tensor:
    """Encode and decode a share `p` of the (normalised) faces as JPEG at a random quality 10-60."""
    import cv2

    pick = (r(x.shape[0]) < p).nonzero().flatten().tolist()
    quality = (10 + r(x.shape[0]) * 50).int().tolist()
    if not pick:
        return x
    pix = ((x[pick, 0] * STD + MEAN).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = x.clone()
    for row, img in zip(pick, pix):
        _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality[row]])
        dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        out[row, 0] = (torch.from_numpy(dec).to(x.device).float() / 255.0 - MEAN) / STD
    return out


def _erase(x: torch.Tensor, r, p: float) -> torch.Tensor:
    """Zero (the normalised mean) a random rectangle in a fraction `p` of the images."""
    b, _, h, w = x.shape
    area = 0.02 + r(b) * 0.18
    aspect = torch.exp((r(b) - 0.5) * 2 * math.log(3))
    eh = (torch.sqrt(area * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(area / aspect) * w).clamp(1, w)
    y0, x0 = r(b) * (h - eh), r(b) * (w - ew)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    box = ((ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1)) &
           (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1)) & (r(b) < p).view(b, 1, 1))
    return x.masked_fill(box.unsqueeze(1), 0.0)
