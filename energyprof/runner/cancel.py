"""Cancelling a job: SIGTERM (or Ctrl-C) becomes JobCancelled in the main thread, never inside a store write."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from energyprof.errors import ControlFlow


class JobCancelled(ControlFlow, BaseException):
    """Control flow, not an error: raised in the job's main thread when it is asked to stop (SIGTERM); a
    BaseException so no `except Exception` in model code swallows it."""


class CancelSwitch:
    """Turns a signal into JobCancelled in the main thread, only while armed and outside store writes."""

    def __init__(self) -> None:
        self.armed = False
        self.requested = False

    def trigger(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Signal handler: remember the request; raise JobCancelled when armed."""
        self.requested = True
        if self.armed:
            self.armed = False
            raise JobCancelled()

    def arm(self) -> None:
        self.armed = True
        if self.requested:
            self.armed = False
            raise JobCancelled()

    def disarm(self) -> None:
        self.armed = False

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """No cancellation inside the block (a store write); a request made meanwhile is raised after it."""
        was = self.armed
        self.armed = False
        try:
            yield
        finally:
            if was:
                self.arm()


@contextmanager
def cancel_on_signals(switch: CancelSwitch, signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[CancelSwitch]:
    """Route these signals to the switch while the block runs (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield switch
        return
    previous = {sig: signal.signal(sig, switch.trigger) for sig in signals}
    try:
        yield switch
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
