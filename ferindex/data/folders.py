"""Generic labelled face folders: `root/<class>/<image>`, one class per sub-folder, as most
expression datasets (CK+, JAFFE exports, a user's own labelled crops) are laid out."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BadImageError, FerindexError
from .fer import FaceSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".pgm"}


def load_class_folders(root: Path, classes: list[str] | None = None, rename: dict[str, str] | None = None,
                       group_of: Callable[[Path], int] | None = None, size: int = 48) -> FaceSet:
    """Grayscale `size`x`size` faces from class sub-folders. `rename` maps folder names to class
    names (e.g. CK+'s "happy" -> FER+'s "happiness"); `classes` fixes the label order (default:
    sorted class names); `group_of` gives an identity per file (subject-wise splits)."""
    root = Path(root)
    if not root.is_dir():
        raise FerindexError(f"{root}: not a folder of class sub-folders")
    rename = rename or {}
    files = [(rename.get(d.name, d.name), f) for d in sorted(p for p in root.iterdir() if p.is_dir())
             for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FerindexError(f"{root}: no images found in class sub-folders")
    classes = classes or sorted({c for c, _ in files})
    unknown = sorted({c for c, _ in files} - set(classes))
    if unknown:
        raise FerindexError(f"{root}: folders {unknown} are not among the classes {classes}")
    images = []
    for _, f in files:
        try:
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("L").resize((size, size), Image.BILINEAR)))
        except OSError as e:
            raise BadImageError(f, f"cannot read image ({e})") from e
    labels = np.array([classes.index(c) for c, _ in files], np.int64)
    groups = np.array([group_of(f) for _, f in files]) if group_of else None
    return FaceSet(np.stack(images), labels, classes, None, None, groups)
