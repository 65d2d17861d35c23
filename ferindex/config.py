"""Defaults and locations shared by every stage: where the data and the index live."""
from __future__ import annotations

import os
from pathlib import Path

INDEX_DIRNAME = ".ferindex"
PACKAGE_DIR = Path(__file__).resolve().parent
MODELS_DIR = PACKAGE_DIR / "models"
DATA_ENV = "FERINDEX_DATA"
DATA_HINT = (
    "research data not found: set FERINDEX_DATA to a folder holding fer2013/, ckplus48/, photos/ "
    "and yalefaces/ (or place it at ../shared/data next to the checkout)"
)


def data_dir() -> Path | None:
    """The research data folder, or None. Looked up at call time so tests can set the variable."""
    env = os.environ.get(DATA_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(PACKAGE_DIR.parent.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def index_dir(album: Path, index: Path | None = None) -> Path:
    """The index folder of an album: `--index DIR` when given, else `<album>/.ferindex`."""
    return Path(index) if index is not None else Path(album) / INDEX_DIRNAME
