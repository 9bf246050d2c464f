"""`energyprof doctor`: every power source, whether it runs here and why not, what `auto` picks, each counter's
update period, quantum and health, and (with --cross-check) a second opinion under a small load."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from energyprof.analysis.counter_health import ComponentHealth, used_components
from energyprof.commands.args import add_json_option, fail, float_range, print_json
from energyprof.power.base import PowerSourceError
from energyprof.power.counter import DEFAULT_PROBE_S, CounterCharacteristics, describe_counter
from energyprof.power.registry import SOURCE_NAMES, all_statuses, auto_name, probe_counters, resolve_source
from energyprof.runner.health import run_health
from energyprof.runner.second_opinion import DEFAULT_SECONDS, SecondOpinion, second_opinion


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="show which power sources work on this machine",
                                   description="Show every power source, whether it can run here (and "
                                               "why not), its components, and which one `auto` picks.")
    parser.add_argument("--probe-seconds", type=float_range(0, 60), default=DEFAULT_PROBE_S,
                        help="how long to poll each available counter source to measure its update period and "
                             f"quantum and judge its health (default {DEFAULT_PROBE_S:g}; 0 skips it; 5 or more lets "
                             "a counter that publishes about once a second be timed and a stalled one be told)")
    parser.add_argument("--cross-check", nargs="?", const="powermetrics", default=None, choices=SOURCE_NAMES,
                        metavar="SOURCE",
                        help="also record the source `auto` picks and SOURCE (default powermetrics) side by side "
                             "while one CPU core is kept busy, and report each component's energy ratio")
    parser.add_argument("--cross-check-seconds", type=float_range(1, 60), default=DEFAULT_SECONDS,
                        help=f"how long the cross-check load runs (default {DEFAULT_SECONDS:g})")
    add_json_option(parser)
    parser.set_defaults(func=run)


def probe_health(characteristics: CounterCharacteristics, source: str) -> dict[str, ComponentHealth]:
    """A probed counter's health over the probe itself: the polling loop keeps one CPU core busy (the CPU and DRAM
    are in use; the GPU and ANE may rest)."""
    readings = list(characteristics.readings)
    if len(readings) < 2:
        return {}
    return run_health(source, characteristics.hardware, readings, [], characteristics,
                      list(characteristics.components), [(readings[0].t_ns, readings[-1].t_ns)],
                      used_components("cpu"))


def run(args: argparse.Namespace) -> int:
    statuses = all_statuses()
    auto = auto_name(statuses)
    counters = probe_counters(statuses, args.probe_seconds)
    health = {name: probe_health(c, name) for name, c in counters.items()}
    opinion = _cross_check(auto, args.cross_check, args.cross_check_seconds) if args.cross_check else None
    if args.json:
        print_json({"sources": [{**asdict(s), "components": list(s.components),
                                 "counter": counters[s.name].to_json() if s.name in counters else None,
                                 "health": {c: h.to_json() for c, h in health.get(s.name, {}).items()} or None}
                                for s in statuses], "auto": auto,
                    "cross_check": opinion.to_json() if opinion is not None else None})
        return 0 if opinion is None or opinion.error is None else 1
    for s in statuses:
        state = "available" if s.available else "not available"
        kind = "measured" if s.measured else "estimated"
        comps = ", ".join(s.components) or "-"
        print(f"{s.name:<13} {state:<14} {kind:<10} every {s.interval_ms} ms  components: {comps}")
        print(f"{'':<13} {s.reason}")
        if s.name in counters:
            print(f"{'':<13} {describe_counter(counters[s.name])}")
            for comp, h in health.get(s.name, {}).items():
                print(f"{'':<13} {comp} counter {h.status}{'' if h.judged else ' (not judged)'}: {h.note}")
    print(f"auto picks: {auto}")
    if opinion is not None:
        for line in opinion.lines():
            print(line)
        if opinion.error:
            return fail(opinion.error)
    return 0


def _cross_check(primary: str, other: str, seconds: float) -> SecondOpinion:
    """The second opinion of `other` on the source `auto` picked, or why there is none."""
    if primary == other:
        return SecondOpinion(primary, other, error=f"{other} is the source auto picks here; name another source "
                                                   "to cross-check it with.")
    try:
        first, second = resolve_source(primary), resolve_source(other)
    except (PowerSourceError, ValueError) as exc:
        return SecondOpinion(primary, other, error=f"{str(exc).rstrip('.')}.")
    if not first.measured:
        return SecondOpinion(primary, other, error=f"auto picks {primary} here, an estimate: there is no measured "
                                                   "source to cross-check.")
    return second_opinion(first, second, seconds)
