"""`energyprof doctor`: every power source, whether it runs here and why not, and what `auto` picks."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from energyprof.commands.args import add_json_option, float_range, print_json
from energyprof.power.counter import DEFAULT_PROBE_S, describe_counter
from energyprof.power.registry import all_statuses, auto_name, probe_counters
from energyprof.runtimes.choice import mlx_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="show which power sources work on this machine",
                                   description="Show every power source, whether it can run here (and "
                                               "why not), its components, and which one `auto` picks; and whether "
                                               "the MLX runtime is installed.")
    parser.add_argument("--probe-seconds", type=float_range(0, 60), default=DEFAULT_PROBE_S,
                        help="how long to poll each available counter source to measure its update period and "
                             f"quantum (default {DEFAULT_PROBE_S:g}; 0 skips it)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    statuses = all_statuses()
    auto = auto_name(statuses)
    counters = probe_counters(statuses, args.probe_seconds)
    mlx = mlx_status()
    if args.json:
        print_json({"sources": [{**asdict(s), "components": list(s.components),
                                 "counter": counters[s.name].to_json() if s.name in counters else None}
                                for s in statuses], "auto": auto, "runtimes": [asdict(mlx)]})
        return 0
    for s in statuses:
        state = "available" if s.available else "not available"
        kind = "measured" if s.measured else "estimated"
        comps = ", ".join(s.components) or "-"
        print(f"{s.name:<13} {state:<14} {kind:<10} every {s.interval_ms} ms  components: {comps}")
        print(f"{'':<13} {s.reason}")
        if s.name in counters:
            print(f"{'':<13} {describe_counter(counters[s.name])}")
    print(f"auto picks: {auto}")
    print(f"runtime mlx: {'available' if mlx.available else 'not available'}: {mlx.detail}")
    return 0
