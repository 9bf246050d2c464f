"""`python -m bench [--quick] [--json] [--only NAME ...]`: run every benchmark and print one table.

Each benchmark module defines `run(quick: bool) -> list[dict]` with rows
{name, value, unit, target, met, setup}: `target` is a string such as "<= 1.03" (or None),
`met` is True/False against it (None without a target).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from typing import Any

MODULES = ("parse_throughput", "attribution_accuracy", "ingest", "profiler_cpu", "counter_reads", "boundary_reads",
           "overhead", "render", "live_view", "replay", "ray_sweep")


def machine() -> str:
    import os

    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB, "
            f"Python {platform.python_version()}")


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("benchmark", "value", "unit", "target", "met")
    lines = [header] + [(r["name"], _fmt(r["value"]), r["unit"], r["target"] or "", _met(r["met"])) for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    parser.add_argument("--only", nargs="*", choices=MODULES, help="run only these benchmark modules")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for name in args.only or MODULES:
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        rows.extend(module.run(quick=args.quick))
        print(f"[bench] {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"machine: {machine()}{'  (quick mode: smoke sizes, not a measurement)' if args.quick else ''}")
        print(format_table(rows))
    return 0 if all(r["met"] is not False for r in rows) or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
