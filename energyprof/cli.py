"""`energyprof` command line: builds the parser from one module per subcommand in energyprof.commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from energyprof import __version__
from energyprof.commands.args import fail
from energyprof.errors import EnergyprofError
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
    a closed pipe ends quietly with EXIT_BROKEN_PIPE, output that cannot be written (a full disk, /dev/full, an I/O
    error) is one sentence and exit status 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(level_of(args.log_level, getattr(args, "log_level_default", DEFAULT_LEVEL)))
    stdout = sys.stdout
    sys.stdout = GuardedOutput(stdout)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except StoreError as exc:
        return fail(str(exc))
    except BrokenPipeError:
        _discard_stdout(stdout)
        return EXIT_BROKEN_PIPE
    except OutputError as exc:
        _discard_stdout(stdout)
        return fail(exc.user_message)
    finally:
        sys.stdout = stdout
    return code


class OutputError(EnergyprofError):
    """Writing to stdout failed for another reason than a closed pipe (a full disk, /dev/full, an I/O error)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"Could not write the output ({exc.strerror or exc}); send it to a file or program that "
                         "can take it (on a disk with free space).")


class GuardedOutput:
    """stdout whose write errors are OutputError (one sentence), except a closed pipe (BrokenPipeError, ended
    quietly by `main`); everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_stdout(stream: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again (Python docs, SIGPIPE note)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
