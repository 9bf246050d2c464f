"""Argument types and options shared by several subcommands (bad values become usage errors)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _number(kind: type, text: str, *, minimum: float | None, maximum: float | None, strict: bool) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"must be <= {maximum:g}, got {text}")
    return value


def int_range(minimum: int, maximum: int):
    """argparse type: an integer in [minimum, maximum]."""
    def parse(text: str) -> int:
        return _number(int, text, minimum=minimum, maximum=maximum, strict=False)
    parse.__name__ = "integer"
    return parse


def float_range(minimum: float, maximum: float, *, strict_min: bool = False):
    """argparse type: a finite float in [minimum, maximum] (or (minimum, maximum] when strict_min)."""
    def parse(text: str) -> float:
        return _number(float, text, minimum=minimum, maximum=maximum, strict=strict_min)
    parse.__name__ = "number"
    return parse


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", default=None,
                        help="SQLite database file (default: $ENERGYPROF_DB or the user data folder)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def fail(message: str, code: int = 1) -> int:
    """Print one sentence for people on stderr and return the exit status."""
    print(f"energyprof: {message}", file=sys.stderr)
    return code
