"""Power sample windows: batched inserts and the reads pages and exports need.

Windows of a run's own power source have `source` NULL; a cross-check source's windows (a second source recorded
during the same run) carry its name. Every read means the run's own source unless `cross_check` names another."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from energyprof.power.base import PowerWindow
from energyprof.store.db import StoreCore


class PowerMixin(StoreCore):
    def add_power_windows(self, run_id: int, windows: Iterable[PowerWindow], cross_check: str | None = None) -> int:
        """Insert windows in one transaction (one row per window and component; NULL = unknown); `cross_check` names
        the cross-check source that recorded them (None: the run's own source)."""
        rows = [(run_id, w.t0_ns, w.t1_ns, comp, energy, cross_check)
                for w in windows for comp, energy in w.energy_mj.items()]
        if rows:
            self.record_rows(
                run_id, "INSERT INTO power_samples (run_id, t0_ns, t1_ns, component, energy_mj, source) "
                "VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def power_samples(self, run_id: int, cross_check: str | None = None) -> pd.DataFrame:
        """Every stored window row of a run's source (or of a cross-check source), long format: t0_ns, t1_ns,
        component, energy_mj."""
        return self.frame("SELECT t0_ns, t1_ns, component, energy_mj FROM power_samples WHERE run_id = ? "
                          "AND source IS ? ORDER BY t0_ns, component", (run_id, cross_check))

    def power_windows(self, run_id: int, cross_check: str | None = None) -> list[PowerWindow]:
        """The run's windows (or a cross-check source's) rebuilt as PowerWindow objects, in time order."""
        rows = self.query("SELECT t0_ns, t1_ns, component, energy_mj FROM power_samples WHERE run_id = ? "
                          "AND source IS ? ORDER BY t0_ns, t1_ns", (run_id, cross_check))
        windows: dict[tuple[int, int], dict[str, float | None]] = {}
        for r in rows:
            windows.setdefault((r["t0_ns"], r["t1_ns"]), {})[r["component"]] = r["energy_mj"]
        return [PowerWindow(t0, t1, e) for (t0, t1), e in windows.items()]

    def power_totals(self, run_id: int) -> pd.DataFrame:
        """Per component: windows, known windows, seconds covered, energy J and mean W (over known windows)."""
        return self.frame(
            "SELECT component, COUNT(*) AS windows, COUNT(energy_mj) AS known_windows, "
            "SUM(CASE WHEN energy_mj IS NOT NULL THEN t1_ns - t0_ns END) / 1e9 AS seconds, "
            "SUM(energy_mj) / 1e3 AS energy_j, "
            "SUM(energy_mj) / 1e3 / (SUM(CASE WHEN energy_mj IS NOT NULL THEN t1_ns - t0_ns END) / 1e9) "
            "AS mean_w FROM power_samples WHERE run_id = ? AND source IS NULL GROUP BY component ORDER BY component",
            (run_id,))

    def power_timeline(self, run_id: int, max_points: int = 1000, *, start_ns: int | None = None,
                       end_ns: int | None = None) -> pd.DataFrame:
        """Mean power per component in at most max_points time bins: t_s (bin start, from the run's clock start),
        component, power_w, peak_w, t1_s (end of the bin's last window). Bins weight each window by its length,
        so the mean stays energy-true. start_ns/end_ns keep only the windows overlapping that span."""
        bounds = {"run": run_id, "start": start_ns, "end": end_ns}
        run = self.query_one("SELECT clock_t0_ns FROM runs WHERE id = ?", (run_id,))
        span = self.query_one("SELECT MIN(t0_ns) AS lo, MAX(t1_ns) AS hi FROM power_samples WHERE run_id = :run "
                              "AND source IS NULL AND (:start IS NULL OR t1_ns > :start) "
                              "AND (:end IS NULL OR t0_ns < :end)", bounds)
        if span is None or span["lo"] is None:
            return pd.DataFrame(columns=["t_s", "component", "power_w", "peak_w", "t1_s"])
        origin = run["clock_t0_ns"] if run and run["clock_t0_ns"] is not None else span["lo"]
        lo, hi = span["lo"], span["hi"]
        width = max(1, -(-(hi - lo) // max(1, max_points)))
        return self.frame(
            "SELECT (MIN(t0_ns) - :origin) / 1e9 AS t_s, component, "
            "SUM(energy_mj) / 1e3 / (SUM(CASE WHEN energy_mj IS NOT NULL THEN t1_ns - t0_ns END) / 1e9) "
            "AS power_w, MAX(energy_mj / 1e3 / ((t1_ns - t0_ns) / 1e9)) AS peak_w, "
            "(MAX(t1_ns) - :origin) / 1e9 AS t1_s FROM power_samples WHERE run_id = :run AND source IS NULL "
            "AND (:start IS NULL OR t1_ns > :start) AND (:end IS NULL OR t0_ns < :end) "
            "GROUP BY (t0_ns - :lo) / :width, component ORDER BY t_s, component",
            {**bounds, "origin": origin, "lo": lo, "width": width})
