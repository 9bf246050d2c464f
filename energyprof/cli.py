"""`energyprof` command line: builds the parser from one module per subcommand in energyprof.commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from energyprof import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "doctor",
    "sample",
    "import_capture",
    "export",
    "profile",
    "job",
    "runs",
)
"""Each module in energyprof.commands defines `register(subparsers)`, which sets `func(args) -> int`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energyprof",
                                     description="Energy and power profiler for transformer inference.")
    parser.add_argument("--version", action="version", version=f"energyprof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"energyprof.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
