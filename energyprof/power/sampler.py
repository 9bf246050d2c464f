"""A thread that runs one power source and hands its windows to a callback."""

from __future__ import annotations

import threading
from collections.abc import Callable

from energyprof.power.base import PowerSource, PowerSourceError, PowerWindow

WindowCallback = Callable[[list[PowerWindow]], None]


class Sampler:
    """Runs `source` on a daemon thread; windows go to `on_windows` (called on the sampler thread).

    If the source dies, `error` holds its message and the thread ends; the caller decides whether the
    run goes on with incomplete power data. `stop()` always stops the source, and it is idempotent.
    """

    def __init__(self, source: PowerSource, on_windows: WindowCallback, interval_ms: int | None = None,
                 poll_s: float = 0.05) -> None:
        self.source = source
        self.on_windows = on_windows
        self.interval_ms = interval_ms or source.default_interval_ms
        self.poll_s = poll_s
        self.error: str | None = None
        self.windows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the source (errors raise here, in the caller's thread) and the reading thread."""
        self.source.start(self.interval_ms)
        self._thread = threading.Thread(target=self._loop, name=f"energyprof-sampler-{self.source.name}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.source.read(self.poll_s)
                if batch:
                    self.windows += len(batch)
                    self.on_windows(batch)
        except PowerSourceError as exc:
            self.error = str(exc)
        except Exception as exc:  # a sampler failure must never kill the job silently
            self.error = f"The {self.source.name} power source failed: {exc}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, stop the source (its process too), and deliver the windows it still had."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.source.stop()
        finally:
            rest = self.source.drain()
            if rest:
                self.windows += len(rest)
                self.on_windows(rest)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
