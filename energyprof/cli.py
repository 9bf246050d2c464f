"""`energyprof` command line: builds the parser from one module per subcommand in energyprof.commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from energyprof import __version__
from energyprof.commands.args import fail
from energyprof.log import DEFAULT_LEVEL, LEVELS, LOG_ENV, configure, level_of
from energyprof.store.errors import StoreError

COMMAND_MODULES: tuple[str, ...] = (
    "doctor",
    "sample",
    "import_capture",
    "import_bundle",
    "export",
    "report",
    "profile",
    "sweep",
    "job",
    "runs",
)
"""Each module in energyprof.commands defines `register(subparsers)`, which sets `func(args) -> int`."""

EXIT_BROKEN_PIPE = 128 + 13
"""Exit status when the reader of our output went away (`energyprof runs | head -1`): what a shell reports for a
program ended by SIGPIPE."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energyprof",
                                     description="Energy and power profiler for transformer inference.")
    parser.add_argument("--version", action="version", version=f"energyprof {__version__}")
    parser.add_argument("--log-level", type=str.lower, choices=LEVELS, default=None,
                        help=f"how much to log on stderr (default: ${LOG_ENV}, else {DEFAULT_LEVEL}; a job the "
                             "dashboard launched logs info to its log file)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"energyprof.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a database problem (StoreError) is one sentence on stderr and exit status 1, output into
    a closed pipe ends quietly with EXIT_BROKEN_PIPE."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(level_of(args.log_level, getattr(args, "log_level_default", DEFAULT_LEVEL)))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except StoreError as exc:
        return fail(str(exc))
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again (Python docs, SIGPIPE note)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
