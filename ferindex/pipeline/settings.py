"""The detection settings an index keeps: detector, upsampling, insightface model pack.

They decide which faces exist, and queries detect with them (pipeline/query.py), so they belong
to the index, not to one build. A build that names none uses the index's own; one that names a
different value on an index whose photos were already detected is refused: storing the new
value without re-detecting would make queries disagree with the album, and re-detecting every
photo would replace every face, and with them the user's labels and people. A new index, or one
where no photo has reached the detector yet, takes the given values (or the defaults).
"""
from __future__ import annotations

from pathlib import Path

from ferindex.errors import FerindexError
from ferindex.pipeline.options import BuildOptions
from ferindex.store.catalog import Catalog

DEFAULTS = {"detector": "hog", "upsample": 1, "model_pack": None}


def _stored(cat: Catalog) -> dict:
    """The settings recorded by earlier builds, as BuildOptions values (None where unset)."""
    detector, upsample = cat.get_meta("detector"), cat.get_meta("upsample")
    pack = cat.get_meta("model_pack")
    return {"detector": detector or None,
            "upsample": int(upsample) if upsample not in (None, "") else None,
            "model_pack": Path(pack) if pack else None}


def _describe(settings: dict) -> str:
    text = f"--detector {settings['detector']} --upsample {settings['upsample']}"
    return text + (f" --model-pack {settings['model_pack']}" if settings["model_pack"] else "")


def resolve_settings(cat: Catalog, options: "BuildOptions") -> None:
    """Fill the options' unset detection settings from the index (or the defaults), in place;
    raise FerindexError when a given one differs from what the index's photos were detected
    with."""
    stored = _stored(cat)
    detected = cat.counts()
    frozen = detected["ok"] + detected["noface"] > 0 and stored["detector"] is not None
    given = {k: getattr(options, k) for k in DEFAULTS}
    changed = [k for k, v in given.items()
               if frozen and v is not None and str(v) != str(stored[k])]
    if changed:
        current = {k: stored[k] if stored[k] is not None else DEFAULTS[k] for k in DEFAULTS}
        wanted = {k: given[k] if given[k] is not None else current[k] for k in DEFAULTS}
        raise FerindexError(
            f"index {cat.path.parent} was built with {_describe(current)}; {_describe(wanted)}"
            " would change which faces exist, and queries use the index's settings. Nothing was"
            " changed. Run the build without these options to keep the index's settings, or"
            " build a separate index with the new ones (`--index NEW_FOLDER`)")
    for key, value in given.items():
        if value is None:
            base = stored if frozen else DEFAULTS
            setattr(options, key, base[key] if base[key] is not None else DEFAULTS[key])
