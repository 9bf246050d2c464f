"""Read-only mode for a dashboard shared with others: `ENERGYPROF_READ_ONLY=1 streamlit run app.py`.

In read-only mode nothing a visitor does can change the machine or the database: no page can launch a profile, a
sweep or a test sample, cancel a job, delete a run, upload a file or probe the counters. The pages hide those
controls, and every action refuses in the function that performs it (energyprof.ui.live and the pages' actions call
`refuse_if_read_only` first), so a control that is reached anyway (a stale session, a hand-made request) still
changes nothing. Reading, charts and downloads stay."""

from __future__ import annotations

import logging
import os

from energyprof.errors import EnergyprofError

log = logging.getLogger(__name__)

READ_ONLY_ENV = "ENERGYPROF_READ_ONLY"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
SIDEBAR_NOTE = ("Read-only: this dashboard is shared for reading; nothing can be launched, cancelled, deleted or "
                "uploaded here.")


class ReadOnlyRefused(EnergyprofError, PermissionError):
    """An action refused because the dashboard runs read-only; the message is one sentence."""


def is_read_only() -> bool:
    """True when $ENERGYPROF_READ_ONLY is 1, true, yes or on (any case)."""
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in TRUE_VALUES


def refuse_if_read_only(action: str) -> None:
    """Raise ReadOnlyRefused (`action`: what was asked, e.g. "launch a profile") in read-only mode."""
    if is_read_only():
        log.warning("read-only mode refused to %s", action)
        raise ReadOnlyRefused(f"This dashboard is read-only ({READ_ONLY_ENV}=1), so it cannot {action}; run "
                              "energyprof on the machine itself to do that.")
