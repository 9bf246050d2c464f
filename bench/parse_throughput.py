"""How fast a powermetrics plist stream is framed and parsed (the largest real recording, repeated)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.rows import row
from energyprof.power.powermetrics_parse import PlistStreamFramer, parse_plist_document
from tests.recordings import FIXTURES

CHUNK = 1 << 16
DEFAULT_INTERVAL_MS = 100
TARGET_DOCS_PER_S = 50.0
"""powermetrics writes 10 documents/s at the default 100 ms interval; 50/s keeps up 5 times over, i.e. parsing
takes at most 20% of one core even for the largest (M2 Ultra, 24 CPUs) documents."""


def largest_recording() -> Path:
    return max((p for p in FIXTURES.glob("*.plist")), key=lambda p: p.stat().st_size)


def parse_stream(stream: bytes) -> int:
    """Frame and parse a stream fed in pipe-sized chunks; the number of samples parsed."""
    framer = PlistStreamFramer()
    parsed = 0
    for i in range(0, len(stream), CHUNK):
        for doc in framer.feed(stream[i:i + CHUNK]):
            parsed += parse_plist_document(doc) is not None
    return parsed


def run(quick: bool) -> list[dict[str, Any]]:
    path = largest_recording()
    doc = path.read_bytes().rstrip(b"\n") + b"\n"
    count = 50 if quick else 200
    stream = b"\0".join([doc] * count)
    best = float("inf")
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        parsed = parse_stream(stream)
        best = min(best, time.perf_counter() - started)
    assert parsed == count, f"parsed {parsed} of {count} documents"
    setup = (f"{path.name} ({len(doc) / 1024:.0f} KiB/document) x {count}, NUL-framed, fed in "
             f"{CHUNK // 1024} KiB chunks; framer + parse_plist_document; best of {1 if quick else 3}")
    return [
        row("powermetrics parse: documents/s", count / best, "docs/s", setup, at_least=TARGET_DOCS_PER_S),
        row("powermetrics parse: MB/s", len(stream) / best / 1e6, "MB/s", setup),
        row("powermetrics parse: ms/document", best / count * 1e3, "ms", setup, at_most=1000 / TARGET_DOCS_PER_S),
        row(f"powermetrics parse: share of one core at {DEFAULT_INTERVAL_MS} ms",
            best / count * 1e3 / DEFAULT_INTERVAL_MS * 100, "%", setup,
            at_most=100 * 1000 / TARGET_DOCS_PER_S / DEFAULT_INTERVAL_MS),
    ]


if __name__ == "__main__":
    for r in run(quick=False):
        print(f"{r['name']}: {r['value']:.4g} {r['unit']} (target {r['target']}, met {r['met']})")
