"""Shared pytest fixtures. Tests that need the research data use `data_dir` and are skipped,
with a message saying how to point at the data, when it is absent."""
from __future__ import annotations

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
