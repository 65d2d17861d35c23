"""`ferindex sample-album DIR`: a small real album for the quickstart, with no download.

A fresh machine has no photo data, and ferindex never downloads at run time. Two installed
packages ship real portraits inside their wheels: scikit-image (`astronaut.png`, Eileen Collins)
and matplotlib (`grace_hopper.jpg`), plus photos without people (scikit-image's coffee cup and
cat). From them we write an album that also exercises the awkward cases a real folder has:
a mirrored copy, an EXIF-rotated JPEG (pixels stored sideways + orientation tag), grayscale,
a downscaled copy, an RGBA PNG with transparency, and two photos with no human face.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferindex.errors import FerindexError

EXIF_ORIENTATION = 0x0112
EXIF_DATETIME_ORIGINAL = 36867
EXIF_IFD = 0x8769


def _skimage_png(name: str) -> Image.Image:
    """A picture bundled inside the scikit-image wheel (opened from its folder: no fetcher)."""
    try:
        import skimage.data
    except ImportError:
        raise FerindexError(
            "the sample album needs scikit-image: pip install scikit-image") from None
    path = Path(skimage.data.__file__).with_name(name)
    if not path.is_file():
        raise FerindexError(f"{path}: not bundled with this scikit-image version")
    with Image.open(path) as im:
        return im.convert("RGB")


def _matplotlib_jpg(name: str) -> Image.Image:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / name
    if not path.is_file():
        raise FerindexError(f"{path}: not bundled with this matplotlib version")
    with Image.open(path) as im:
        return im.convert("RGB")


def _exif(taken: str, orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_DATETIME_ORIGINAL] = taken
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    return exif


def write_sample_album(dest: str | Path) -> list[Path]:
    """Write the sample photos into `dest` (created if needed); return their paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    astronaut = _skimage_png("astronaut.png")
    hopper = _matplotlib_jpg("grace_hopper.jpg")
    w, h = hopper.size
    rgba = np.dstack([np.asarray(astronaut), np.full(astronaut.size[::-1], 255, np.uint8)])
    rgba[:, -96:, 3] = 0  # a transparent strip, as in a cut-out PNG
    written: list[tuple[str, Image.Image, dict]] = [
        ("astronaut.jpg", astronaut, {"exif": _exif("2021:05:01 10:00:00")}),
        ("grace_hopper.jpg", hopper, {"exif": _exif("2021:05:02 11:00:00")}),
        ("astronaut_mirrored.jpg", astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), {}),
        # stored rotated 90 degrees clockwise; orientation 8 tells viewers to turn it back
        ("grace_hopper_exif_rotated.jpg", hopper.transpose(Image.Transpose.ROTATE_270),
         {"exif": _exif("2021:05:03 12:00:00", orientation=8)}),
        ("astronaut_gray.png", astronaut.convert("L"), {}),
        ("grace_hopper_small.jpg", hopper.resize((w * 3 // 5, h * 3 // 5), Image.LANCZOS), {}),
        ("astronaut_rgba.png", Image.fromarray(rgba, "RGBA"), {}),
        ("no_people/coffee.jpg", _skimage_png("coffee.png"), {}),
        ("no_people/cat.jpg", _skimage_png("chelsea.png"), {}),
    ]
    paths = []
    for name, im, kwargs in written:
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            kwargs = {"quality": 92, **kwargs}
        im.save(path, **kwargs)
        paths.append(path)
    return paths
