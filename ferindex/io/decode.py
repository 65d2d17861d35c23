"""Decode any photo file into an upright RGB uint8 array, or fail with a one-line reason.

Album files are untrusted: phones write EXIF-rotated JPEGs, scanners write 16-bit TIFFs, the web
gives CMYK JPEGs, palette PNGs and animated GIFs, and some files are truncated, empty, mislabelled
or crafted to exhaust memory. Every failure becomes `BadImageError(path, reason)` so indexing can
log it and move on. Pillow's global settings (MAX_IMAGE_PIXELS, LOAD_TRUNCATED_IMAGES) are never
changed: the pixel limit (100 MP by default) is checked here, per call, before any pixel is
decoded; Pillow's own warning, which starts at 89.5 MP, is silenced so it does not refuse a
96 MP panorama under the documented limit (its hard error, at twice its limit, still applies).
The format is told by the content, not the suffix: a JPEG saved as `.heic` decodes as a JPEG.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferindex.errors import BadImageError

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any camera; a 100 MP RGB array is 300 MB
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_HEIF_HINT = "HEIC/HEIF photos need pillow-heif: install ferindex[heic]"
_heif_registered = False


def _register_heif() -> bool:
    """Register pillow-heif's opener on first need; False when it is not installed."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _heif_registered = True
    return True


def _looks_like_heif(path: Path) -> bool:
    """HEIF files start with an ISO-BMFF `ftyp` box naming a HEIF brand (whatever the suffix)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth gray (I;16*, I, F) -> uint8 by scaling the nominal range, never clipping.

    16-bit data spans 0..65535, so it is divided by 257 (65535 -> 255). Mode "I" (32-bit int) is
    how Pillow opens many 16-bit PNG/TIFF files, so values up to 65535 are treated as 16-bit and
    values up to 255 as 8-bit; anything else, like float images, is min-max scaled because no
    nominal range exists (floats already in [0, 1] are taken as such).
    """
    a = arr.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        scale_lo, scale_hi = 0.0, 65535.0
    elif mode == "F" and lo >= 0.0 and hi <= 1.0:
        scale_lo, scale_hi = 0.0, 1.0
    elif mode == "I" and lo >= 0 and hi <= 255:
        scale_lo, scale_hi = 0.0, 255.0
    elif mode == "I" and lo >= 0 and hi <= 65535:
        scale_lo, scale_hi = 0.0, 65535.0
    else:
        scale_lo, scale_hi = lo, max(hi, lo + 1e-12)
    out = (a - scale_lo) * (255.0 / (scale_hi - scale_lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H,W,3) uint8. Transparent areas are composited onto white, the
    neutral background a viewer shows, rather than exposing whatever colour hides under alpha."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        gray = _scale_to_uint8(np.asarray(im), mode)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode in ("PA", "La"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `path` to an upright (H,W,3) uint8 RGB array (first frame of animations).

    Raises BadImageError(path, reason) for anything that is not a usable, sane-sized image.
    """
    path = Path(path)
    if _looks_like_heif(path) and not _register_heif():
        raise BadImageError(path, _HEIF_HINT)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow warns from 89.5 MP on; our own limit below is the one that applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise BadImageError(
                        path, f"image too large ({width}x{height} = {width * height:,} pixels, "
                        f"limit {max_pixels:,}): refused as a possible decompression bomb")
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                im.load()
                upright = ImageOps.exif_transpose(im)
                return _to_rgb(upright)
    except BadImageError:
        raise
    except FileNotFoundError:
        raise BadImageError(path, "file not found (deleted or moved?)") from None
    except PermissionError:
        raise BadImageError(path, "permission denied") from None
    except IsADirectoryError:
        raise BadImageError(path, "is a directory, not an image file") from None
    except Image.DecompressionBombError as e:
        raise BadImageError(path, f"refused as a possible decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not a readable image (unknown format or wrong extension)"
                            ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow reports truncated/corrupt data as OSError ("image file is truncated", "broken
        # data stream"), and malformed headers as SyntaxError/ValueError.
        raise BadImageError(path, f"corrupt or truncated image data ({e})") from None
    except MemoryError:
        raise BadImageError(path, "not enough memory to decode this image") from None


def downscale_for_detection(rgb: np.ndarray, max_side: int = 1600) -> tuple[np.ndarray, float]:
    """A copy of `rgb` whose longer side is at most `max_side`, and the factor used.

    Detectors cost time in proportion to pixels and faces in a 6000 px photo are far larger than
    the detector's 80 px window, so detecting on a smaller copy loses nothing but time.
    Coordinates found on `small` map back to `rgb` by dividing by `scale` (<= 1).
    """
    import cv2

    h, w = rgb.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return rgb, 1.0
    scale = max_side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale
