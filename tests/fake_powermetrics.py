#!/usr/bin/env python3
"""A stand-in for Apple's /usr/bin/powermetrics that replays real recordings as a live `-f plist` stream.

It takes powermetrics' own flags (-f plist, -i MS, -n N, -s/--samplers, -b, -o), replays documents from
tests/fixtures/powermetrics (by default the three full cpu/gpu/thermal recordings: M1 ×2, M2 Ultra)
every -i ms, rewrites each `elapsed_ns` to the real time that passed and scales the mJ energies by the
same factor (so power stays what the Mac drew), and frames them exactly like powermetrics:
`</plist>\\n`, then a NUL *before* the next `<?xml`, none after the last. It exits cleanly on SIGTERM
and SIGINT, and on a closed stdout.

Environment knobs:
  FAKE_POWERMETRICS_FIXTURE=PATH       replay this recording instead (its NUL-separated documents are split)
  FAKE_POWERMETRICS_EUID=N             act as this effective uid (non-zero: "must be invoked as the superuser")
  FAKE_POWERMETRICS_EXIT_AFTER=N       after N documents print an error on stderr and exit 1
  FAKE_POWERMETRICS_GARBAGE=1          write junk bytes and a malformed document before every valid one
  FAKE_POWERMETRICS_TRUNCATE_AFTER=N   after N documents write half of the next one and exit 0
  FAKE_POWERMETRICS_STALL_AFTER=N      after N documents stop writing but stay alive until signalled
  FAKE_POWERMETRICS_PIDFILE=PATH       write this process's pid to PATH at start
  FAKE_POWERMETRICS_IGNORE_SIGTERM=1   ignore SIGTERM (only SIGKILL ends it), to test the escalation
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recordings import FIXTURES

DEFAULT_FIXTURES = (
    "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_2.02s.plist",
    "m1_MacBookPro17-1_macOS13.3-22E252_plist_cpu-gpu-thermal_1sample_0.53s.plist",
    "m2ultra_Mac14-14_macOS14.4-23E224_plist_cpu-gpu-thermal_1sample_1.02s.plist",
)
ENERGY_KEYS = "cpu_energy|gpu_energy|ane_energy|dram_energy|package_energy"
_ELAPSED = re.compile(rb"(<key>elapsed_ns</key>\s*<integer>)(\d+)(</integer>)")
_ENERGY = re.compile(rb"(<key>(?:" + ENERGY_KEYS.encode() + rb")</key>\s*<integer>)(\d+)(</integer>)")
_TIMESTAMP = re.compile(rb"(<key>timestamp</key>\s*<date>)([^<]*)(</date>)")
GARBAGE = (b"powermetrics: warning: something odd happened\n\0<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           b"<plist version=\"1.0\">\n<dict>\n<key>is_delta</key><true/>\n"
           b"<key>elapsed_ns</key><integer>not-a-number</integer>\n</dict>\n</plist>\n")


def split_documents(data: bytes) -> list[bytes]:
    """The complete `<?xml ... </plist>` documents of a recording, each ending with its newline."""
    docs = []
    for part in data.split(b"\0"):
        start, end = part.find(b"<?xml"), part.rfind(b"</plist>")
        if start >= 0 and end > start:
            docs.append(part[start:end + len(b"</plist>")] + b"\n")
    return docs


def load_templates() -> list[bytes]:
    chosen = os.environ.get("FAKE_POWERMETRICS_FIXTURE")
    paths = [Path(chosen)] if chosen else [FIXTURES / name for name in DEFAULT_FIXTURES]
    docs = [doc for path in paths for doc in split_documents(path.read_bytes())]
    if not docs:
        raise SystemExit(f"fake powermetrics: no plist document in {', '.join(map(str, paths))}")
    return docs


def retime(template: bytes, elapsed_ns: int) -> bytes:
    """The template with elapsed_ns set to the real window, energies scaled alike, timestamp set to now."""
    found = _ELAPSED.search(template)
    if not found:
        return template
    factor = elapsed_ns / int(found.group(2))
    doc = _ELAPSED.sub(lambda m: m.group(1) + str(elapsed_ns).encode() + m.group(3), template)
    doc = _ENERGY.sub(lambda m: m.group(1) + str(round(int(m.group(2)) * factor)).encode() + m.group(3), doc)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return _TIMESTAMP.sub(lambda m: m.group(1) + now + m.group(3), doc)


def env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="powermetrics", add_help=True)
    parser.add_argument("-f", "--format", default="text")
    parser.add_argument("-i", "--sample-rate", type=int, default=5000)
    parser.add_argument("-n", "--sample-count", type=int, default=-1)
    parser.add_argument("-s", "--samplers", default="default")
    parser.add_argument("-b", "--buffer-size", type=int, default=None)
    parser.add_argument("-o", "--output-file", default=None)
    return parser.parse_args(argv)


def euid() -> int:
    forced = os.environ.get("FAKE_POWERMETRICS_EUID")
    return int(forced) if forced not in (None, "") else os.geteuid()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def stream(args: argparse.Namespace, out) -> int:
    """Write documents until -n is reached, a fault knob fires, or a signal arrives."""
    templates = load_templates()
    exit_after = env_int("FAKE_POWERMETRICS_EXIT_AFTER")
    truncate_after = env_int("FAKE_POWERMETRICS_TRUNCATE_AFTER")
    stall_after = env_int("FAKE_POWERMETRICS_STALL_AFTER")
    garbage = os.environ.get("FAKE_POWERMETRICS_GARBAGE") == "1"
    interval_s = max(args.sample_rate, 1) / 1e3
    sent = 0
    last = time.perf_counter_ns()
    while args.sample_count <= 0 or sent < args.sample_count:
        if exit_after is not None and sent >= exit_after:
            print(f"powermetrics: sampler failed after {sent} samples (fake fault)", file=sys.stderr, flush=True)
            return 1
        if stall_after is not None and sent >= stall_after:
            while True:
                time.sleep(3600)
        next_at = last + int(interval_s * 1e9)
        time.sleep(max(0.0, (next_at - time.perf_counter_ns()) / 1e9))
        now = time.perf_counter_ns()
        doc = retime(templates[sent % len(templates)], now - last)
        last = now
        prefix = b"\0" if sent else b""
        if garbage:
            out.write(prefix + GARBAGE)
            prefix = b"\0"
        if truncate_after is not None and sent >= truncate_after:
            out.write(prefix + doc[: len(doc) // 2])
            out.flush()
            return 0
        out.write(prefix + doc)
        out.flush()
        sent += 1
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pidfile = os.environ.get("FAKE_POWERMETRICS_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(str(os.getpid()))
    if euid() != 0:
        print("powermetrics must be invoked as the superuser", file=sys.stderr, flush=True)
        return 1
    if args.format != "plist":
        print("fake powermetrics: only -f plist is replayed", file=sys.stderr, flush=True)
        return 1
    ignore_term = os.environ.get("FAKE_POWERMETRICS_IGNORE_SIGTERM") == "1"
    signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_term else _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if args.output_file:
            with open(args.output_file, "wb") as out:
                return stream(args, out)
        return stream(args, sys.stdout.buffer)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
