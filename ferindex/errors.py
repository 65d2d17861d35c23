"""Errors a user can act on: each names the file (or thing) and the problem, so the CLI can print
one line instead of a traceback."""
from __future__ import annotations

from pathlib import Path


class FerindexError(Exception):
    """Base class for every error the CLI turns into a one-line message."""


class BadImageError(FerindexError):
    """A file that cannot be used as a photo (corrupt, truncated, not an image, too large...)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ModelError(FerindexError):
    """A model or model pack that is missing or inconsistent."""


class CatalogError(FerindexError):
    """An index directory that is missing, locked or from an incompatible version."""
