"""Where the zeus_apple_silicon stand-in lives (the `stand_in` fixture in conftest.py puts it on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

STAND_INS = Path(__file__).resolve().parent / "stand_ins"
"""Put this folder on sys.path (or PYTHONPATH) and `import zeus_apple_silicon` finds the stand-in."""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without FAKE_IOREPORT_*/ENERGYPROF_* settings, the stand-in on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_IOREPORT_", "ENERGYPROF_", "FAKE_POWER"))}
    return {**env, "PYTHONPATH": str(STAND_INS), **extra}
