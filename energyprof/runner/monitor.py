"""The job's monitor thread: flushes buffered power windows (~0.5 s), writes heartbeats (~2 s), reports progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from energyprof.power.base import PowerWindow
from energyprof.store import Store
from energyprof.store.writer import WindowWriter

FLUSH_EVERY_S = 0.5
HEARTBEAT_EVERY_S = 2.0


class Monitor:
    """A thread beside the token loop; nothing it does can stop the job (a busy database is retried)."""

    def __init__(self, store: Store, run_id: int, progress: Callable[[], tuple[float, int]],
                 on_tick: Callable[[], None] | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.progress = progress
        """() -> (share done in [0, 1], tokens done), read from the job's main thread's state."""
        self.on_tick = on_tick
        self.writer = WindowWriter(store, run_id)
        self.more_writers: list[WindowWriter] = []
        """Other sources' windows (a cross-check source), flushed with the run's own."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"energyprof-monitor-{run_id}", daemon=True)
        self.flush_errors = 0
        self.last_error: BaseException | None = None

    def add(self, windows: list[PowerWindow]) -> None:
        """Sampler callback: buffer windows (cheap; the writing happens on the monitor thread)."""
        self.writer.add(windows)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        next_beat = 0.0
        try:
            while not self._stop.wait(FLUSH_EVERY_S):
                self.flush()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT_EVERY_S
                    self._beat()
                if self.on_tick is not None:
                    self.on_tick()
        finally:
            self.store.close()

    def _beat(self) -> None:
        share, tokens = self.progress()
        try:
            self.store.heartbeat(self.run_id, progress=share, tokens_done=tokens)
        except Exception as exc:  # a busy database must not kill the monitor; the next beat retries
            self.flush_errors += 1
            self.last_error = exc

    def flush(self) -> None:
        """Write buffered windows; on a database error keep them for the next try."""
        for writer in (self.writer, *self.more_writers):
            try:
                writer.flush()
            except Exception as exc:  # the writer kept the batch for the next flush
                self.flush_errors += 1
                self.last_error = exc

    def stop(self) -> None:
        """Stop the thread and write what is still buffered (from the calling thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()
        self._beat()
