"""Replayed layers (measured per-layer energy, a runtime's replay): writes from the job, reads for pages.

Row tuples (fast `executemany` batches); energy in mJ, time in ns, power in W, all per call of the layer:
- replay trial:   (layer_id, phase, step_idx, trial, t0_ns, t1_ns, calls, energy_mj, net_energy_mj)
                  one timed loop; its energies (whole system, whole loop) are NULL until the run is attributed.
- layer replay:   (layer_id, phase, step_idx, trials, calls, time_ns_per_call, energy_mj_per_call,
                  net_energy_mj_per_call, power_w, net_power_w, ci95_mj, net_ci95_mj, cv, flagged, method,
                  windows, restore_subtracted): whole-system figures over the trials (ci95: half-width of the 95 % CI
                  of the mean over trials; cv: coefficient of variation of the trials' energy per call; flagged: a CI
                  wider than its mean, energyprof.summary.MeanCI.wider_than_mean; method: `counter`, `windows` or
                  `apportioned`, how the trials' energy was read; windows: fewest whole sample windows in a trial).
- replay energy:  (layer_id, phase, component, energy_mj_per_call, net_energy_mj_per_call, ci95_mj)

`layer_id` RESTORE_LAYER_ID is the `(cache restore)` reference row: the replay loop restoring the KV cache with no
layer call, measured alone and subtracted from every layer whose inputs hold a cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from energyprof.store.db import StoreCore

Row = Sequence[Any]
RESTORE_LAYER_ID = -1
RESTORE_NAME = "(cache restore)"
RESTORE_KIND = "restore"


class ReplayMixin(StoreCore):
    # -- writes (the job) ----------------------------------------------------------------------
    def add_replay_trials(self, run_id: int, rows: Iterable[Row]) -> None:
        """Trials as they finish (energies None), and again with their energies once the run is attributed."""
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO replay_trials (run_id, layer_id, phase, step_idx, trial, t0_ns, t1_ns, "
            "calls, energy_mj, net_energy_mj) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((run_id, *r, *([None] * (9 - len(r)))) for r in rows))

    def add_layer_replay(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO layer_replay (run_id, layer_id, phase, step_idx, trials, calls, "
            "time_ns_per_call, energy_mj_per_call, net_energy_mj_per_call, power_w, net_power_w, ci95_mj, "
            "net_ci95_mj, cv, flagged, method, windows, restore_subtracted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ((run_id, *r) for r in rows))

    def add_layer_replay_energy(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO layer_replay_energy (run_id, layer_id, phase, component, "
            "energy_mj_per_call, net_energy_mj_per_call, ci95_mj) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((run_id, *r) for r in rows))

    # -- reads (pages, exports) ----------------------------------------------------------------
    def layer_replay(self, run_id: int) -> pd.DataFrame:
        """Per replayed layer and phase, whole system: layer, kind, parent_id, position, phase, step_idx, trials,
        calls, time_s_per_call, energy_j_per_call, net_energy_j_per_call, power_w, net_power_w, ci95_j,
        net_ci95_j, cv, flagged, method, windows, restore_subtracted; phases in order, layers in model order."""
        return self.frame(
            "SELECT r.layer_id, COALESCE(l.name, :restore) AS layer, COALESCE(l.kind, :kind) AS kind, l.parent_id, "
            "COALESCE(l.position, -1) AS position, r.phase, r.step_idx, r.trials, r.calls, "
            "r.time_ns_per_call / 1e9 AS time_s_per_call, r.energy_mj_per_call / 1e3 AS energy_j_per_call, "
            "r.net_energy_mj_per_call / 1e3 AS net_energy_j_per_call, r.power_w, r.net_power_w, "
            "r.ci95_mj / 1e3 AS ci95_j, r.net_ci95_mj / 1e3 AS net_ci95_j, r.cv, r.flagged, r.method, r.windows, "
            "r.restore_subtracted FROM layer_replay r "
            "LEFT JOIN layers l ON l.run_id = r.run_id AND l.layer_id = r.layer_id WHERE r.run_id = :run "
            "ORDER BY CASE r.phase WHEN 'forward' THEN 0 WHEN 'prefill' THEN 1 ELSE 2 END, position",
            self._names(run_id))

    def layer_replay_energy(self, run_id: int) -> pd.DataFrame:
        """Long format, per replayed layer, phase and component: energy_j_per_call, net_energy_j_per_call, ci95_j."""
        return self.frame(
            "SELECT r.layer_id, COALESCE(l.name, :restore) AS layer, COALESCE(l.kind, :kind) AS kind, l.parent_id, "
            "COALESCE(l.position, -1) AS position, r.phase, r.component, "
            "r.energy_mj_per_call / 1e3 AS energy_j_per_call, r.net_energy_mj_per_call / 1e3 AS net_energy_j_per_call, "
            "r.ci95_mj / 1e3 AS ci95_j FROM layer_replay_energy r "
            "LEFT JOIN layers l ON l.run_id = r.run_id AND l.layer_id = r.layer_id WHERE r.run_id = :run "
            "ORDER BY CASE r.phase WHEN 'forward' THEN 0 WHEN 'prefill' THEN 1 ELSE 2 END, position, r.component",
            self._names(run_id))

    def replay_trials(self, run_id: int) -> pd.DataFrame:
        """Every timed replay loop: layer, kind, phase, step_idx, trial, t0_ns, t1_ns, calls, energy_j, net_energy_j."""
        return self.frame(
            "SELECT r.layer_id, COALESCE(l.name, :restore) AS layer, COALESCE(l.kind, :kind) AS kind, l.parent_id, "
            "COALESCE(l.position, -1) AS position, r.phase, r.step_idx, r.trial, r.t0_ns, r.t1_ns, r.calls, "
            "r.energy_mj / 1e3 AS energy_j, r.net_energy_mj / 1e3 AS net_energy_j FROM replay_trials r "
            "LEFT JOIN layers l ON l.run_id = r.run_id AND l.layer_id = r.layer_id WHERE r.run_id = :run "
            "ORDER BY r.t0_ns", self._names(run_id))

    @staticmethod
    def _names(run_id: int) -> dict[str, Any]:
        return {"run": run_id, "restore": RESTORE_NAME, "kind": RESTORE_KIND}
