"""Argument types and options shared by several subcommands (bad values become usage errors)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from energyprof.spec.params import defaults, field_types, param_specs
from energyprof.spec.sweep import parse_values


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


def value_list(name: str):
    """argparse type: a comma-separated list of values of one sweepable parameter, each checked by the table."""
    def parse(text: str) -> list[Any]:
        try:
            return parse_values(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    parse.__name__ = "list"
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


def add_param_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = (),
                      containers: dict[str, Any] | None = None, lists: tuple[str, ...] = (),
                      overrides: dict[str, Any] | None = None) -> None:
    """One option per profile parameter, generated from the parameter table (energyprof.spec.params).

    `containers` puts some options in an argument group instead of the parser (e.g. a mutually exclusive one);
    the options named in `lists` take a comma-separated list of values (a sweep); `overrides` replaces defaults."""
    values, types = {**defaults(), **(overrides or {})}, field_types()
    for name, spec in param_specs():
        if not spec.cli or name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        default = values[name]
        text = spec.help.replace("%", "%%")
        kind = types[name]
        target = (containers or {}).get(name, parser)
        if name in lists:
            shown = spec.none_means if default is None else default
            target.add_argument(flag, type=value_list(name), default=[default], dest=name, metavar="A,B,...",
                                help=f"{text}; a comma-separated list of values to sweep (default: {shown})")
            continue
        if kind is bool:
            target.add_argument(flag, action="store_true", default=default, help=text)
            continue
        if spec.none_means and default is None:
            text += f" (default: {spec.none_means})"
        elif default is not None and spec.widget != "text_area":
            text += f" (default: {default})"
        options: dict[str, Any] = {"default": default, "help": text, "dest": name}
        allowed = spec.allowed()
        if allowed is not None and not spec.indexed:
            options["choices"] = allowed
        elif kind is int and spec.minimum is not None and spec.maximum is not None:
            options["type"] = int_range(int(spec.minimum), int(spec.maximum))
        elif kind is float and spec.minimum is not None and spec.maximum is not None:
            options["type"] = float_range(spec.minimum, spec.maximum, strict_min=spec.exclusive_min)
        target.add_argument(flag, **options)
