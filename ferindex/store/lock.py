"""One writer per index: an advisory `flock` on `<index>/write.lock`.

Why flock and not a pid file alone: the kernel drops the lock when the process dies (even on
SIGKILL), so a crashed build never leaves a stale lock behind. The pid written into the file is
only there to make the "already running" message useful. Readers never take this lock; SQLite WAL
lets them read while a build writes.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ferindex.errors import CatalogError

LOCK_NAME = "write.lock"


class WriteLock:
    """Non-blocking exclusive lock on an index directory, usable as a context manager."""

    def __init__(self, index_dir: str | Path) -> None:
        self.index_dir = Path(index_dir)
        self.path = self.index_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if free; False (without waiting) if another process holds it."""
        if self._fd is not None:
            return True
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self) -> "WriteLock":
        """Take the lock or raise CatalogError naming the index and the holder's pid."""
        if not self.try_acquire():
            raise CatalogError(
                f"another build is running on {self.index_dir} (pid {self.holder_pid() or '?'})"
            )
        return self

    def holder_pid(self) -> int | None:
        """The pid the current holder wrote, if readable (informational only)."""
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
