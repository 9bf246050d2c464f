"""Dashboard render cost: server-side time of the run page for a large run, and the most rows any chart ships.

The run is seeded with tests/seed.py (the Store's own write methods): 30 minutes of power at 100 ms with 4
components (18,000 windows = 72,000 sample rows), 4,000 tokens and 200,000 layer calls; quick mode uses a
tenth. The full mode also renders a 2-hour run (72,000 windows = 288,000 sample rows, same tokens and
calls). The run page is rendered by Streamlit's AppTest (the same script run a server does, without the
browser): one warm-up render, then `cold` renders (Streamlit's caches cleared first: the first view of a
run) and `warm` renders (the finished run's reads come from st.cache_data), the median of each. The row
count is read from the vega-lite specs the run page and the compare page send (datasets summed per chart).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.rows import row

RENDER_TARGET_S = 2.0
ROWS_TARGET = 5000
REPEATS = 3


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"minutes": 3.0, "interval_ms": 100, "tokens": 400, "layer_calls": 20_000}
    return {"minutes": 30.0, "interval_ms": 100, "tokens": 4000, "layer_calls": 200_000}


def _render(run_id: int, *, cold: bool) -> tuple[float, Any]:
    """Seconds to render the run page (pages/run.py) once, after the home page has opened the database."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.seed import REPO

    if cold:
        st.cache_data.clear()
        st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()  # the Runs page (app.py): opens the Store, so a cold render times the page's reads, not the open
    at.switch_page("pages/run.py")
    at.query_params["run"] = str(run_id)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"the run page failed: {at.exception[0].value}")
    return seconds, at


def _max_rows(at: Any) -> int:
    from tests.seed import shipped_rows

    return max((shipped_rows(e) for e in at.get("vega_lite_chart")), default=0)


def run(quick: bool) -> list[dict[str, Any]]:
    from energyprof.store import Store
    from tests.seed import open_page, seed_run

    sizes = _sizes(quick)
    previous = os.environ.get("ENERGYPROF_DB")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "render.sqlite3"
        os.environ["ENERGYPROF_DB"] = str(db)
        try:
            store = Store(db)
            big = seed_run(store, components=("cpu", "gpu", "ane", "package"), **sizes)
            small = seed_run(store, minutes=1.0, tokens=100, layer_calls=5000, source="estimate", measured=False,
                             components=("cpu",))
            samples = len(store.power_samples(big))
            _render(big, cold=True)  # warm-up: imports, first connections
            cold, warm, at = [], [], None
            for _ in range(REPEATS):
                seconds, at = _render(big, cold=True)
                cold.append(seconds)
                started = time.perf_counter()
                at.run()
                warm.append(time.perf_counter() - started)
            rows = _max_rows(at)
            compare = open_page("pages/compare.py", {"runs": f"{big},{small}"}, timeout=120)
            rows = max(rows, _max_rows(compare))
            long_rows = None
            if not quick:
                long = seed_run(store, components=("cpu", "gpu", "ane", "package"), **{**sizes, "minutes": 120.0})
                long_rows = len(store.power_samples(long))
                long_cold = statistics.median(_render(long, cold=True)[0] for _ in range(REPEATS))
                rows = max(rows, _max_rows(_render(long, cold=True)[1]))
            store.close()
        finally:
            if previous is None:
                os.environ.pop("ENERGYPROF_DB", None)
            else:
                os.environ["ENERGYPROF_DB"] = previous
    setup = (f"run page, {sizes['minutes']:g} min at {sizes['interval_ms']} ms x 4 components ({samples:,} sample "
             f"rows), {sizes['tokens']:,} tokens, {sizes['layer_calls']:,} layer calls; AppTest, median of "
             f"{REPEATS} after a warm-up")
    long_row = [] if long_rows is None else [
        row("run page render, 2 h run, first view", long_cold, "s",
            setup.replace(f"{sizes['minutes']:g} min", "120 min").replace(f"{samples:,}", f"{long_rows:,}"),
            at_most=RENDER_TARGET_S)]
    return [
        row("run page render, first view (cold cache)", statistics.median(cold), "s", setup,
            at_most=RENDER_TARGET_S),
        *long_row,
        row("run page render, cached", statistics.median(warm), "s", setup, at_most=RENDER_TARGET_S),
        row("most rows shipped by one chart", rows, "rows",
            "largest dataset total of any vega-lite chart on the run page (that run) and the compare page",
            at_most=ROWS_TARGET),
    ]


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick=False)))
