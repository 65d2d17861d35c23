"""XMP sidecars for every photo of an index that has faces: plan (what would be written, for
a dry run), then write. A sidecar is `<photo file name>.xmp` (IMG_1.jpg -> IMG_1.jpg.xmp, the
name digiKam, darktable and Immich look for) beside the photo, or under `out` mirroring the
album's folders. Photos are only ever read; a sidecar is rewritten only when its bytes change,
so a second run over an unchanged index writes nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ferindex.export.xmp import PhotoTags, Region, XmpError, merge
from ferindex.store.catalog import Catalog

NEW, UPDATE, UNCHANGED, SKIPPED = "new", "update", "unchanged", "skipped"


@dataclass
class SidecarPlan:
    photo: Path
    sidecar: Path
    status: str  # new | update | unchanged | skipped
    tags: PhotoTags | None = None
    content: bytes | None = None
    reason: str | None = None  # why a sidecar is skipped

    def doc(self) -> dict:
        """JSON view for `ferindex export --json`."""
        tags = self.tags
        return {"photo": str(self.photo), "sidecar": str(self.sidecar), "status": self.status,
                "keywords": tags.hierarchical("|") if tags else [],
                "regions": len(tags.regions) if tags else 0, "reason": self.reason}


def photo_tags(cat: Catalog) -> dict[str, PhotoTags]:
    """{photo path relative to the album: its tags}: every face (but those marked "not a face")
    with its shown label (the user's, else the KNN vote, else the model's) and its person's
    name, if named."""
    rows = cat.con.execute(
        "SELECT p.path, p.width, p.height, f.id, f.x0, f.y0, f.x1, f.y1,"
        " COALESCE(f.user_label, f.knn_label, f.label, 'unknown'), pe.name"
        " FROM faces f JOIN photos p ON p.id = f.photo_id"
        " LEFT JOIN people pe ON pe.id = f.person_id WHERE f.not_a_face = 0"
        " ORDER BY p.path, f.face_idx").fetchall()
    by_photo: dict[str, tuple[int, int, list[Region]]] = {}
    for path, w, h, fid, x0, y0, x1, y1, label, name in rows:
        if not w or not h:
            continue  # no size stored: regions cannot be made relative
        by_photo.setdefault(path, (int(w), int(h), []))[2].append(
            Region(int(fid), (x0, y0, x1, y1), label, name))
    return {p: PhotoTags(w, h, tuple(regions)) for p, (w, h, regions) in by_photo.items()}


def sidecar_path(album: Path, rel: str, out: Path | None = None) -> Path:
    base = album if out is None else out
    photo = base / rel
    return photo.with_name(photo.name + ".xmp")


def plan(cat: Catalog, album: Path, out: Path | None = None) -> list[SidecarPlan]:
    """What writing the sidecars would do, photo by photo (nothing is written)."""
    plans = []
    for rel, tags in photo_tags(cat).items():
        path = sidecar_path(album, rel, out)
        if not (album / rel).is_file():
            plans.append(SidecarPlan(album / rel, path, SKIPPED, tags,
                                     reason="photo not found (moved or deleted since the build)"))
            continue
        try:
            old = path.read_bytes() if path.is_file() else None
            content = merge(old, tags)
        except (OSError, XmpError) as e:
            plans.append(SidecarPlan(album / rel, path, SKIPPED, tags,
                                     reason=f"existing sidecar left alone: {e}"))
            continue
        status = NEW if old is None else UNCHANGED if old == content else UPDATE
        plans.append(SidecarPlan(album / rel, path, status, tags, content))
    return plans


def write(plans: list[SidecarPlan]) -> int:
    """Write the new and changed sidecars (atomically: temp file, then rename); returns how
    many were written."""
    n = 0
    for p in plans:
        if p.status not in (NEW, UPDATE):
            continue
        p.sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.sidecar.with_name(p.sidecar.name + ".tmp")
        tmp.write_bytes(p.content)
        os.replace(tmp, p.sidecar)
        n += 1
    return n
