"""Power windows from the sampler thread to the store, in batches, without losing any on a busy database."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from energyprof.power.base import PowerWindow

if TYPE_CHECKING:
    from energyprof.store import Store


class WindowWriter:
    """Buffers windows (the sampler callback `add` is cheap) and writes them in one transaction per `flush`.

    A failed write puts the batch back in front of the buffer and re-raises; the next flush retries it.
    With keep=True every window also stays in `windows` (for a summary at the end)."""

    def __init__(self, store: Store, run_id: int, *, keep: bool = False, cross_check: str | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.cross_check = cross_check
        """The cross-check source these windows come from (None: the run's own source)."""
        self.windows: list[PowerWindow] | None = [] if keep else None
        self._pending: list[PowerWindow] = []
        self._lock = threading.Lock()

    def add(self, windows: list[PowerWindow]) -> None:
        with self._lock:
            self._pending.extend(windows)
            if self.windows is not None:
                self.windows.extend(windows)

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.store.add_power_windows(self.run_id, batch, self.cross_check)
        except BaseException:
            with self._lock:
                self._pending[:0] = batch
            raise
