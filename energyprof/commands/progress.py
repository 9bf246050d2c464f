"""A progress bar on stderr for long commands (phase, tokens, elapsed), only when stderr is a terminal."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from energyprof.runner.engine import Progress, ProgressCallback


class ProgressBar:
    """A tqdm bar fed with engine Progress reports (from the job's monitor thread)."""

    def __init__(self, stream: TextIO) -> None:
        from tqdm import tqdm

        size = shutil.get_terminal_size((100, 20))  # a terminal that reports 0 x 0 (a bare pty) gets 100 x 20
        self._bar = tqdm(total=1, unit="token", file=stream, leave=False, ncols=min(size.columns or 100, 120),
                         nrows=size.lines or 20,
                         bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} tokens [{elapsed}]")
        self._lock = threading.Lock()

    def __call__(self, progress: Progress) -> None:
        with self._lock:
            self._bar.total = progress.tokens_total
            self._bar.n = min(progress.tokens_done, progress.tokens_total)
            self._bar.set_description_str(progress.phase, refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        with self._lock:
            self._bar.close()


@contextmanager
def terminal_progress(stream: TextIO | None = None) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing on `stream` (stderr) when it is a terminal, else None (no output at all)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield None
        return
    bar = ProgressBar(stream)
    try:
        yield bar
    finally:
        bar.close()
