"""Child processes a power source runs (powermetrics): started in their own session, stopped as a group.

A child started with :func:`spawn` leads its own session, so :func:`terminate` can signal its whole
process group (``sudo`` passes SIGTERM on to the program it runs): SIGTERM, a grace period, then SIGKILL.
Every object that owns a child registers itself with :func:`track`; :func:`stop_all` (also run at
interpreter exit) calls ``stop()`` on each one still registered.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import weakref
from collections.abc import Sequence
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


_LIVE: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def track(owner: Stoppable) -> None:
    """Remember an owner of a running child so that stop_all() reaches it."""
    _LIVE.add(owner)


def untrack(owner: Stoppable) -> None:
    _LIVE.discard(owner)


def stop_all() -> None:
    """Stop every running child of this process (for a job's SIGTERM handler and atexit)."""
    for owner in list(_LIVE):
        with contextlib.suppress(Exception):
            owner.stop()


atexit.register(stop_all)


def spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start argv in its own session with stdout/stderr as non-blocking pipes (OSError when it cannot start)."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0, start_new_session=True)
    for stream in (proc.stdout, proc.stderr):
        os.set_blocking(stream.fileno(), False)
    return proc


def kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's process group (its own session), or the child alone when that fails."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.send_signal(sig)


def terminate(proc: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """SIGTERM the group, wait up to grace_s, then SIGKILL; always reaps the child."""
    if proc.poll() is not None:
        return
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
        proc.wait()
