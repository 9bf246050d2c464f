"""The sudoers rule energyprof needs for powermetrics, exactly as scripts/setup_powermetrics.sh writes it.

The script is the one owner of the rule; this module asks it (`--print`) so the dashboard and the docs show the
very lines it would install, never a hand-written (and possibly dangerous) approximation."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup_powermetrics.sh"


def sudo_rule(user: str) -> str | None:
    """The rule setup_powermetrics.sh would install for `user`; None when the script is not there or refuses."""
    if not SCRIPT.is_file():
        return None
    try:
        done = subprocess.run(["/bin/sh", str(SCRIPT), "--print", "--user", user], capture_output=True, text=True,
                              timeout=10, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
