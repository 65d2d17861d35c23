"""Shared pytest fixtures. Tests that need the research data use `data_dir` and are skipped,
with a message saying how to point at the data, when it is absent."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferindex.config import DATA_HINT, data_dir as _find_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The research data folder (FERINDEX_DATA or ../shared/data); skips the test if missing."""
    root = _find_data_dir()
    if root is None:
        pytest.skip(DATA_HINT)
    return root


def ui_album_files(root: Path) -> list[Path]:
    """3 + 3 one-face chips of two people, a two-face group photo and one Obama frame."""
    photos = root / "photos"
    files = [f for who in ("John_Salley", "John_Savage")
             for f in sorted((photos / "dlib_johns" / who).glob("*.jpg"))[:3]]
    return files + [photos / "dlib_faces" / "2008_001009.jpg",
                    photos / "face_recognition" / "examples" / "obama_small.jpg"]


@pytest.fixture(scope="session")
def album_index(data_dir, tmp_path_factory) -> Path:
    """A small real index (build pipeline) of ui_album_files(), built once per session for the
    UI tests (AppTest and browser); tests must not change it (copy it to write)."""
    from ferindex.pipeline.build import build_album

    album = tmp_path_factory.mktemp("ui_album")
    for f in ui_album_files(data_dir):
        prefix = f.parent.name + "_" if f.parent.parent.name == "dlib_johns" else ""
        shutil.copyfile(f, album / (prefix + f.name))
    report = build_album(album, album / ".ferindex")
    assert report.totals["faces"] >= 8 and not report.errors
    return album / ".ferindex"
