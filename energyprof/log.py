"""Where energyprof's log lines go: `--log-level` / $ENERGYPROF_LOG, WARNING to stderr by default.

Modules that decide something (which power source, the counter probe, the disturbed flag, the replay plan, endpoint
errors, job launch and reaping) log with `logging.getLogger(__name__)`. A job process the dashboard launched
(`energyprof job`, `energyprof sweep-job`) logs at INFO: its stderr is its log file (energyprof.runner.jobs).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LOG_ENV = "ENERGYPROF_LOG"
"""Environment variable naming the log level (debug, info, warning, error), read when --log-level is not given."""
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
DEFAULT_LEVEL = "warning"
JOB_LEVEL = "info"
"""The level of a job process the dashboard launched, unless --log-level or $ENERGYPROF_LOG says otherwise."""
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_HANDLER_NAME = "energyprof"


def level_of(option: str | None, default: str = DEFAULT_LEVEL) -> str:
    """The level to use: the option, else $ENERGYPROF_LOG when it names a level, else `default`."""
    if option:
        return option.lower()
    from_env = os.environ.get(LOG_ENV, "").strip().lower()
    return from_env if from_env in LEVELS else default


def configure(level: str, stream: TextIO | None = None) -> None:
    """Send the `energyprof` loggers' records at `level` and above to `stream` (stderr), once per process."""
    logger = logging.getLogger("energyprof")
    logger.setLevel(getattr(logging, level.upper()))
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.propagate = False
