"""Contact sheets: a PNG grid of face chips with captions, the way a person checks what a
cluster, sub-class or summary actually contains."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_H = 14


def _to_rgb(chip: np.ndarray, cell: int) -> Image.Image:
    chip = np.asarray(chip)
    if chip.dtype != np.uint8 or chip.ndim not in (2, 3):
        raise ValueError(f"chips must be uint8 gray (H,W) or RGB (H,W,3), got {chip.dtype} {chip.shape}")
    img = Image.fromarray(chip).convert("RGB")
    return img.resize((cell, cell), Image.BILINEAR)


def contact_sheet(chips: Sequence[np.ndarray], captions: Sequence[str] | None = None,
                  cols: int = 4, path: str | Path | None = None, cell: int = 96,
                  title: str | None = None) -> Image.Image:
    """Grid of chips (gray or RGB uint8, any size, scaled to `cell` px) with optional captions
    under each; written as PNG when `path` is given. Returns the image."""
    if len(chips) == 0:
        raise ValueError("contact sheet needs at least one chip")
    if captions is not None and len(captions) != len(chips):
        raise ValueError(f"{len(captions)} captions for {len(chips)} chips")
    cols = max(1, min(cols, len(chips)))
    rows = -(-len(chips) // cols)
    cap_h = CAPTION_H if captions is not None else 0
    top = CAPTION_H + 4 if title else 0
    sheet = Image.new("RGB", (cols * (cell + 2) + 2, top + rows * (cell + cap_h + 2) + 2), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if title:
        draw.text((3, 2), title, fill="black", font=font)
    for i, chip in enumerate(chips):
        r, c = divmod(i, cols)
        x, y = 2 + c * (cell + 2), top + 2 + r * (cell + cap_h + 2)
        sheet.paste(_to_rgb(chip, cell), (x, y))
        if captions is not None:
            draw.text((x + 1, y + cell + 1), str(captions[i])[: cell // 6], fill="black", font=font)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path, format="PNG")
    return sheet
