"""Places windows whose length a source reports (powermetrics' ``elapsed_ns``) on the job clock.

powermetrics' windows are contiguous (each ``elapsed_ns`` runs from the previous sample to this one),
and a document can only be read after its window ended, so its arrival time bounds the window's true
end from above. The first window is ``[arrival - elapsed_ns, arrival]`` (t1 = the time its ``</plist>``
was read). Each later window starts where the previous one ended and ends at
``min(arrival, previous t1 + elapsed_ns)``: in steady state that is exactly ``elapsed_ns`` long and free
of read jitter (a late read by the sampler thread does not move it), and when an earlier window was
placed too late (documents that queued in the pipe, a reader that was slow to start), the next ones are
shortened, by at most 10% each (so no window's power is inflated by more than ~11%), until the chain
catches up. Documents read together are bounded by laying them end to end back from their common arrival.
After a dropped (malformed or cut-off) document, or when the chain falls more than ``gap_ns`` behind
the arrivals, the chain restarts from the arrival time. Windows never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class WindowClock:
    """Places reported-length windows on the job clock (the rule is in the module docstring)."""

    max_squeeze = 0.1
    """A window is shortened by at most this share of its length while the chain catches up."""

    def __init__(self, gap_ns: int) -> None:
        self.gap_ns = gap_ns
        self.last_t1: int | None = None

    def place(self, elapsed_ns: Sequence[int], arrival_ns: int,
              holes: Sequence[bool] | None = None) -> list[tuple[int, int]]:
        """(t0, t1) for documents read together at arrival_ns; holes[i]: a dropped document came before i."""
        bounds, end = [], arrival_ns
        for elapsed in reversed(elapsed_ns):
            bounds.append(end)
            end -= elapsed
        bounds.reverse()
        spans = []
        for i, (elapsed, bound) in enumerate(zip(elapsed_ns, bounds, strict=True)):
            spans.append(self._one(elapsed, bound, bool(holes and holes[i])))
            self.last_t1 = spans[-1][1]
        return spans

    def _one(self, elapsed_ns: int, bound_ns: int, after_hole: bool) -> tuple[int, int]:
        last = self.last_t1
        if last is None:
            return bound_ns - elapsed_ns, bound_ns
        chain = last + elapsed_ns
        if after_hole or bound_ns - chain > self.gap_ns:
            t1 = max(bound_ns, last + 1)
            return max(last, t1 - elapsed_ns), t1
        shortest = last + max(1, math.ceil(elapsed_ns * (1 - self.max_squeeze)))
        return last, max(min(bound_ns, chain), shortest)
