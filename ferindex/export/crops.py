"""A ZIP of face crops, cut from the original photos (read only) with some margin around each
box; a photo that cannot be read any more gives the thumbnail the build stored instead."""
from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

MARGIN = 0.25  # of the box size on every side: hair and chin, as people crop faces
MAX_SIDE = 512  # px; larger crops are scaled down


def crop_name(row: dict) -> str:
    """`face_<id>_<label>.jpg`: sorts by id, says what it shows."""
    label = str(row.get("label") or "face").replace("/", "-")
    return f"face_{int(row['face_id']):06d}_{label}.jpg"


def crop(path: Path, box: Sequence[int]) -> bytes:
    """JPEG of the box plus MARGIN, from the upright photo (FerindexError/OSError if unreadable)."""
    from PIL import Image

    from ferindex.io.decode import load_rgb

    rgb = load_rgb(path)
    x0, y0, x1, y1 = (int(v) for v in box)
    mx, my = round((x1 - x0) * MARGIN), round((y1 - y0) * MARGIN)
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb[max(0, y0 - my):min(h, y1 + my), max(0, x0 - mx):min(w, x1 + mx)])
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def crops_zip(rows: Sequence[dict], thumbnails: dict[int, bytes | None] | None = None) -> bytes:
    """ZIP bytes holding one JPEG per row (`face_id`, absolute `path`, `box`, `label`), plus
    faces.csv listing them; rows whose photo and thumbnail are both gone are listed in
    missing.txt."""
    from ferindex.errors import FerindexError
    from ferindex.export.tables import to_csv

    buf, missing = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress further
        for row in rows:
            try:
                data = crop(Path(row["path"]), row["box"])
            except (OSError, FerindexError):
                data = (thumbnails or {}).get(int(row["face_id"]))
            if data is None:
                missing.append(f"{row['face_id']}\t{row['path']}")
                continue
            zf.writestr(crop_name(row), data)
        zf.writestr("faces.csv", to_csv([{"file": crop_name(r), **r} for r in rows]))
        if missing:
            zf.writestr("missing.txt", "\n".join(missing) + "\n")
    return buf.getvalue()
