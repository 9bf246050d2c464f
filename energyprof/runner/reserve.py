"""Disk space held back for a run's last write, so that a disk that fills up mid-run still gets the real reason.

When the disk holding the database fills, every SQLite write fails — the run's final status and sentence too,
which would leave the run "running" until the reaper calls it "killed or crashed". So a profiling job holds a
small file of RESERVE_BYTES beside the database while it runs; when a write fails because the disk is full, the
engine deletes it and writes the final row (status, sentence, summary) into the space it frees. The file is always
deleted when the run ends (and by the reaper for a job that was killed).
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path

logger = logging.getLogger(__name__)

RESERVE_BYTES = 4 * 1024 * 1024
"""Room for the final write: the run row with its summary (tens of KB), SQLite's WAL frames for it and the
journal of a checkpoint, with a wide margin."""


class DiskReserve:
    """A file of RESERVE_BYTES that can be given back to the disk at the moment it is needed."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path, self.size = path, size
        self.held = False

    def take(self) -> bool:
        """Create the file with its blocks allocated; False (and nothing held) when the disk has no room already
        or the folder cannot take it (the run goes on without a reserve)."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            logger.info("no disk reserve for the final write at %s: %s", self.path, exc.strerror or exc)
            return False
        try:
            _allocate(fd, self.size)
            self.held = True
        except OSError as exc:
            logger.info("no disk reserve for the final write at %s: %s", self.path, exc.strerror or exc)
            with suppress(OSError):
                os.unlink(self.path)
        finally:
            os.close(fd)
        return self.held

    def release(self) -> bool:
        """Delete the file; True when it was held (space was freed)."""
        held, self.held = self.held, False
        with suppress(FileNotFoundError, OSError):
            os.unlink(self.path)
        if held:
            logger.info("released the disk reserve %s", self.path)
        return held


def _allocate(fd: int, size: int) -> None:
    """Really allocate `size` bytes (a sparse file would free nothing): posix_fallocate, else written zeros."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (95, 22):  # EOPNOTSUPP / EINVAL: the filesystem cannot; write zeros instead
                raise
    block = b"\0" * 65536
    for _ in range(size // len(block)):
        os.write(fd, block)
    os.fsync(fd)
