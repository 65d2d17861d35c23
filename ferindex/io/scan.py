"""Walk an album folder and list its image files, deterministically and without crashing.

Albums live on real disks: folders can be unreadable, files vanish while a phone syncs, and
symlinks can point back up the tree. `scan` therefore yields `ScanProblem` items instead of
raising, visits each real directory once (so symlink loops end), and sorts entries by name so
two scans of an unchanged album give the same order (incremental indexing relies on it).
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif"})


@dataclass(frozen=True)
class ScanEntry:
    """An image file and the stat fields that tell whether it changed since the last index."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """A file or folder that could not be listed or stat-ed, with a short human reason.

    `unavailable`: the path exists (or did: a symlink whose target is gone, as on an unmounted
    drive) but could not be looked at, so whatever the index holds at or under it must be kept,
    not taken as deleted. False for what was skipped on purpose (a loop, a FIFO)."""

    path: Path
    reason: str
    unavailable: bool = True


BROKEN_LINK = ("broken symlink: its target is missing (an unmounted drive, or deleted);"
               " what the index holds under it is kept")


def _reason(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "vanished during the scan"
    if isinstance(err, PermissionError):
        return "permission denied"
    return err.strerror or type(err).__name__


def is_image_name(name: str) -> bool:
    """True for the file suffixes ferindex decodes (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def scan(root: str | Path, exclude_dirs: tuple[str, ...] = (".ferindex",)
         ) -> Iterator[ScanEntry | ScanProblem]:
    """Yield a ScanEntry per image file under `root` (depth first, names sorted), and a
    ScanProblem for each unreadable folder, vanished file, or symlink loop skipped.

    Symlinked folders are followed once: each directory is identified by its real path, so a
    link back up the tree, or two links to the same folder, do not repeat it. A broken symlink
    (any name: it may have been a folder) and an image name that is not a regular file (a FIFO,
    a socket, a device) are reported, never read.
    """
    root = Path(root)
    excluded = set(exclude_dirs)
    visited: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            if folder != root:
                yield ScanProblem(folder, "symlink to a folder already scanned (skipped)",
                                  unavailable=False)
            continue
        visited.add(real)
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield ScanProblem(folder, f"cannot list folder: {_reason(e)}")
            continue
        subdirs: list[Path] = []
        for child in children:
            try:
                if child.is_dir():  # follows symlinks
                    if child.name not in excluded:
                        subdirs.append(Path(child.path))
                    continue
                image = is_image_name(child.name)
                if not image and not child.is_symlink():
                    continue
                st = child.stat()  # follows symlinks: a broken link raises here
            except FileNotFoundError:
                if child.is_symlink():
                    yield ScanProblem(Path(child.path), BROKEN_LINK)
                else:  # deleted between the listing and the stat: gone, not unavailable
                    yield ScanProblem(Path(child.path), "vanished during the scan",
                                      unavailable=False)
                continue
            except OSError as e:
                yield ScanProblem(Path(child.path), _reason(e))
                continue
            if not image:  # a symlink to something that is not an image file
                continue
            if not stat.S_ISREG(st.st_mode):
                yield ScanProblem(Path(child.path), "not a regular file (a FIFO, socket or"
                                  " device): skipped", unavailable=False)
                continue
            yield ScanEntry(Path(child.path), st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))  # pop() then takes them in name order


def content_hash(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """blake2b hex digest of the file's bytes, read in chunks (photos can be hundreds of MB).

    Identifies moved or renamed photos and exact duplicates without decoding them.
    """
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
