"""Profiling results: steps (tokens), their energy, layers and layer calls; writes from the job, reads for pages.

Row tuples (fast `executemany` batches):
- step:          (repeat, idx, phase, t0_ns, t1_ns, n_tokens, token_id, token_text)
- step energy:   (repeat, idx, component, energy_mj, net_energy_mj, resolution[, how])
- layer:         (layer_id, name, kind, parent_id, position)
- layer call:    (repeat, step_idx, layer_id, t0_ns, t1_ns, time_ns, energy_mj, resolution[, how])
                 energy_mj is the call's whole-system energy (energyprof.power.base.total_energy_mj);
                 the pseudo-layer `other` (time in no hooked module) has t0_ns = t1_ns = NULL.
- layer energy:  (layer_id, component, calls, time_ns, energy_mj, net_energy_mj, resolution), over measured repeats.

`how` (energyprof.provenance: measured / apportioned / estimated / unknown) says how a figure was obtained; rows
written without it (older runs) are labelled on reading from the run's source and the row's resolution.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from energyprof.components import whole_system_long
from energyprof.provenance import (
    interval_provenance_array,
    source_provenance,
    whole_system_provenance,
    worst_provenance,
)
from energyprof.store.db import StoreCore

Row = Sequence[Any]


def _with_how(row: Row, width: int) -> tuple[Any, ...]:
    """A row of `width` values, the optional trailing `how` filled with None when absent."""
    return (*row, None)[:width]


class ProfileMixin(StoreCore):
    # -- writes (the job) ----------------------------------------------------------------------
    def add_steps(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT INTO steps (run_id, repeat, idx, phase, t0_ns, t1_ns, n_tokens, token_id, token_text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ((run_id, *r) for r in rows))

    def add_step_energy(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO step_energy (run_id, repeat, idx, component, energy_mj, net_energy_mj, "
            "resolution, how) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ((run_id, *_with_how(r, 7)) for r in rows))

    def add_layers(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO layers (run_id, layer_id, name, kind, parent_id, position) "
            "VALUES (?, ?, ?, ?, ?, ?)", ((run_id, *r) for r in rows))

    def add_layer_calls(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT INTO layer_calls (run_id, repeat, step_idx, layer_id, t0_ns, t1_ns, time_ns, energy_mj, "
            "resolution, how) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ((run_id, *_with_how(r, 9)) for r in rows))

    def add_layer_energy(self, run_id: int, rows: Iterable[Row]) -> None:
        self.record_rows(
            run_id, "INSERT OR REPLACE INTO layer_energy (run_id, layer_id, component, calls, time_ns, energy_mj, "
            "net_energy_mj, resolution) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ((run_id, *r) for r in rows))

    # -- reads (pages, exports) ----------------------------------------------------------------
    def steps(self, run_id: int, repeat: int | None = None) -> pd.DataFrame:
        """Steps of a run (one repeat or all), times in seconds from the run's clock start and (t0_ns, t1_ns) on the
        job clock itself (time.perf_counter_ns() of the job process)."""
        return self.frame(
            "SELECT s.repeat, s.idx, s.phase, (s.t0_ns - COALESCE(r.clock_t0_ns, 0)) / 1e9 AS t0_s, "
            "(s.t1_ns - COALESCE(r.clock_t0_ns, 0)) / 1e9 AS t1_s, s.t0_ns, s.t1_ns, "
            "(s.t1_ns - s.t0_ns) / 1e9 AS duration_s, "
            "s.n_tokens, s.token_id, s.token_text FROM steps s JOIN runs r ON r.id = s.run_id "
            "WHERE s.run_id = :run AND (:repeat IS NULL OR s.repeat = :repeat) ORDER BY s.repeat, s.idx",
            {"run": run_id, "repeat": repeat})

    def step_times_ns(self, run_id: int, repeat: int | None = None) -> pd.DataFrame:
        """Steps with their raw clock stamps: repeat, idx, phase, t0_ns, t1_ns (for traces and re-attribution)."""
        return self.frame(
            "SELECT repeat, idx, phase, t0_ns, t1_ns FROM steps "
            "WHERE run_id = :run AND (:repeat IS NULL OR repeat = :repeat) ORDER BY repeat, idx",
            {"run": run_id, "repeat": repeat})

    def step_energy(self, run_id: int, repeat: int | None = None) -> pd.DataFrame:
        """Long format: repeat, idx, phase, component, energy_j, net_energy_j, resolution, how."""
        frame = self.frame(
            "SELECT e.repeat, e.idx, s.phase, e.component, e.energy_mj / 1e3 AS energy_j, "
            "e.net_energy_mj / 1e3 AS net_energy_j, e.resolution, e.how FROM step_energy e "
            "JOIN steps s ON s.run_id = e.run_id AND s.repeat = e.repeat AND s.idx = e.idx "
            "WHERE e.run_id = :run AND (:repeat IS NULL OR e.repeat = :repeat) "
            "ORDER BY e.repeat, e.idx, e.component", {"run": run_id, "repeat": repeat})
        return self._filled_how(run_id, frame)

    def _filled_how(self, run_id: int, frame: pd.DataFrame) -> pd.DataFrame:
        """`how` where a row has none (written before it was stored): from the run's source and the resolution."""
        missing = frame["how"].isna() if "how" in frame else pd.Series(dtype=bool)
        if not missing.any():
            return frame
        run = self.query_one("SELECT source, measured FROM runs WHERE id = ?", (run_id,))
        measured = None if run is None or run["measured"] is None else bool(run["measured"])
        kind = source_provenance(run["source"] if run else None, measured)
        resolution = pd.to_numeric(frame.loc[missing, "resolution"], errors="coerce").to_numpy(dtype=float)
        frame.loc[missing, "how"] = interval_provenance_array(kind, resolution)
        return frame

    def step_span_ns(self, run_id: int) -> tuple[int, int] | None:
        """(first step start, last step end) on the job clock, or None for a run without steps."""
        row = self.query_one("SELECT MIN(t0_ns) AS lo, MAX(t1_ns) AS hi FROM steps WHERE run_id = ?", (run_id,))
        return None if row is None or row["lo"] is None else (int(row["lo"]), int(row["hi"]))

    def tokens_with_energy(self, run_id: int, repeat: int | None = None) -> pd.DataFrame:
        """One row per step: the step's columns plus whole-system gross/net energy (J), worst resolution and `how`.

        Whole-system energy follows the one rule in energyprof.components (package when known, else the parts), and
        its `how` the matching rule in energyprof.provenance."""
        steps = self.steps(run_id, repeat)
        energy = self.step_energy(run_id, repeat)
        if steps.empty:
            return steps.assign(energy_j=pd.Series(dtype=float), net_energy_j=pd.Series(dtype=float),
                                resolution=pd.Series(dtype=float), how=pd.Series(dtype=object))
        totals = whole_system_long(energy, ["repeat", "idx"], ["energy_j", "net_energy_j"])
        resolution = energy.groupby(["repeat", "idx"], as_index=False)["resolution"].min()
        totals = totals.merge(resolution, on=["repeat", "idx"], how="left").merge(
            _whole_how(energy), on=["repeat", "idx"], how="left")
        return steps.merge(totals, on=["repeat", "idx"], how="left")

    def layers(self, run_id: int) -> pd.DataFrame:
        return self.frame("SELECT layer_id, name, kind, parent_id, position FROM layers WHERE run_id = ? "
                          "ORDER BY position", (run_id,))

    def layer_summary(self, run_id: int) -> pd.DataFrame:
        """Per layer and component over measured repeats: calls, time_s, energy_j, net_energy_j, resolution."""
        return self.frame(
            "SELECT l.layer_id, l.name, l.kind, l.parent_id, l.position, e.component, e.calls, "
            "e.time_ns / 1e9 AS time_s, e.energy_mj / 1e3 AS energy_j, e.net_energy_mj / 1e3 AS net_energy_j, "
            "e.resolution FROM layer_energy e JOIN layers l ON l.run_id = e.run_id AND l.layer_id = e.layer_id "
            "WHERE e.run_id = ? ORDER BY l.position, e.component", (run_id,))

    def layer_calls(self, run_id: int) -> pd.DataFrame:
        """Every layer call (for downloads and traces, not for charts)."""
        frame = self.frame(
            "SELECT c.repeat, c.step_idx, l.name AS layer, l.kind, c.t0_ns, c.t1_ns, c.time_ns, "
            "c.energy_mj, c.resolution, c.how FROM layer_calls c "
            "JOIN layers l ON l.run_id = c.run_id AND l.layer_id = c.layer_id "
            "WHERE c.run_id = ? ORDER BY c.repeat, c.step_idx, c.t0_ns", (run_id,))
        return self._filled_how(run_id, frame)

    def layer_call_count(self, run_id: int) -> int:
        row = self.query_one("SELECT COUNT(*) AS n FROM layer_calls WHERE run_id = ?", (run_id,))
        return int(row["n"]) if row else 0

    def phase_energy(self, run_id: int) -> pd.DataFrame:
        """Per phase and component over every stored repeat: energy_j and net_energy_j (sums; NaN when a step's is
        unknown), steps, and how (the worst label of those steps: one apportioned step makes the sum apportioned)."""
        frame = self.frame(
            "SELECT s.phase, e.component, e.how, COUNT(*) AS steps, COUNT(e.energy_mj) AS known, "
            "COUNT(e.net_energy_mj) AS net_known, SUM(e.energy_mj) / 1e3 AS energy_j, "
            "SUM(e.net_energy_mj) / 1e3 AS net_energy_j, MIN(e.resolution) AS resolution FROM step_energy e "
            "JOIN steps s ON s.run_id = e.run_id AND s.repeat = e.repeat AND s.idx = e.idx "
            "WHERE e.run_id = ? GROUP BY s.phase, e.component, e.how", (run_id,))
        columns = ["phase", "component", "energy_j", "net_energy_j", "steps", "how"]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        frame = self._filled_how(run_id, frame)
        frame.loc[frame["known"] < frame["steps"], "energy_j"] = float("nan")
        frame.loc[frame["net_known"] < frame["steps"], "net_energy_j"] = float("nan")
        rows = []
        for (phase, component), group in frame.groupby(["phase", "component"], sort=False):
            rows.append({"phase": phase, "component": component,
                         "energy_j": group["energy_j"].sum(min_count=len(group)),
                         "net_energy_j": group["net_energy_j"].sum(min_count=len(group)),
                         "steps": int(group["steps"].sum()), "how": worst_provenance(group["how"])})
        return pd.DataFrame(rows, columns=columns)

    def layer_phase_energy(self, run_id: int) -> pd.DataFrame:
        """Per phase and layer over every stored repeat: the layer's name, kind, parent, whole-system energy_j (the
        calls' time-apportioned energy) and time_s; the pseudo-layer `other` is the steps' time in no hooked layer.

        A generation's steps are the prefill (step 0) and decodes: then each layer's decode figures are its totals
        (layer_energy, already summed) less its step-0 calls (an index lookup), instead of a pass over every call."""
        spans = {r["phase"]: (r["lo"], r["hi"]) for r in self.query(
            "SELECT phase, MIN(idx) AS lo, MAX(idx) AS hi FROM steps WHERE run_id = ? GROUP BY phase", (run_id,))}
        totals = self.layer_summary(run_id)
        if set(spans) != {"prefill", "decode"} or spans["prefill"] != (0, 0) or totals.empty:
            return self.layer_phase_energy_of_calls(run_id)
        keys = ["layer_id", "name", "kind", "parent_id", "position"]
        whole = whole_system_long(totals, keys, ["energy_j"]).merge(
            totals.groupby("layer_id", as_index=False)["time_s"].max(), on="layer_id")
        first = self.frame(
            "SELECT layer_id, SUM(energy_mj) / 1e3 AS energy_j, SUM(time_ns) / 1e9 AS time_s FROM layer_calls "
            "WHERE run_id = :run AND repeat IN (SELECT DISTINCT repeat FROM steps WHERE run_id = :run) "
            "AND step_idx = 0 GROUP BY layer_id", {"run": run_id})
        prefill = whole[keys].merge(first, on="layer_id", how="inner")
        decode = whole.merge(first, on="layer_id", how="left", suffixes=("", "_first")).fillna(
            {"energy_j_first": 0.0, "time_s_first": 0.0})
        decode = decode.assign(energy_j=decode["energy_j"] - decode["energy_j_first"],
                               time_s=decode["time_s"] - decode["time_s_first"])[[*keys, "energy_j", "time_s"]]
        columns = ["phase", *keys, "energy_j", "time_s"]
        return pd.concat([decode.assign(phase="decode"), prefill.assign(phase="prefill")],
                         ignore_index=True)[columns].sort_values(["phase", "position"], ignore_index=True)

    def layer_phase_energy_of_calls(self, run_id: int) -> pd.DataFrame:
        """layer_phase_energy from every call joined with its step's phase (any phases; the reference)."""
        return self.frame(
            "SELECT a.phase, l.layer_id, l.name, l.kind, l.parent_id, l.position, a.energy_j, a.time_s FROM "
            "(SELECT s.phase, c.layer_id, SUM(c.energy_mj) / 1e3 AS energy_j, SUM(c.time_ns) / 1e9 AS time_s "
            "FROM layer_calls c JOIN steps s ON s.run_id = c.run_id AND s.repeat = c.repeat AND s.idx = c.step_idx "
            "WHERE c.run_id = :run GROUP BY s.phase, c.layer_id) a "
            "JOIN layers l ON l.run_id = :run AND l.layer_id = a.layer_id ORDER BY a.phase, l.position",
            {"run": run_id})

    def layer_step_matrix(self, run_id: int, repeat: int = 0, max_cells: int = 5000) -> pd.DataFrame:
        """Whole-system energy per (layer, step bin) for one repeat, with at most max_cells rows.

        Steps are grouped into equal bins when layers × steps exceeds max_cells. Columns: layer, kind,
        position, step_lo, step_hi, energy_j, time_s."""
        dims = self.query_one(
            "SELECT COUNT(DISTINCT layer_id) AS layers, MAX(step_idx) AS last FROM layer_calls "
            "WHERE run_id = ? AND repeat = ?", (run_id, repeat))
        if dims is None or dims["last"] is None:
            return pd.DataFrame(columns=["layer", "kind", "position", "step_lo", "step_hi", "energy_j", "time_s"])
        steps = dims["last"] + 1
        bins = max(1, min(steps, max_cells // max(1, dims["layers"])))
        width = -(-steps // bins)
        return self.frame(  # aggregate first, join the few layer rows after: a third faster at 200,000 calls
            "SELECT l.name AS layer, l.kind, l.position, a.step_lo, MIN(a.step_lo + :w - 1, :last) AS step_hi, "
            "a.energy_j, a.time_s FROM (SELECT layer_id, (step_idx / :w) * :w AS step_lo, "
            "SUM(energy_mj) / 1e3 AS energy_j, SUM(time_ns) / 1e9 AS time_s FROM layer_calls "
            "WHERE run_id = :run AND repeat = :repeat GROUP BY step_idx / :w, layer_id) a "
            "JOIN layers l ON l.run_id = :run AND l.layer_id = a.layer_id ORDER BY l.position, a.step_lo",
            {"w": width, "last": steps - 1, "run": run_id, "repeat": repeat})


def _whole_how(energy: pd.DataFrame) -> pd.DataFrame:
    """Per step (repeat, idx): the `how` of its whole-system energy from its components' (one rule, in provenance)."""
    if energy.empty:
        return pd.DataFrame(columns=["repeat", "idx", "how"])
    wide = energy.pivot(index=["repeat", "idx"], columns="component", values="how")
    labels = whole_system_provenance({c: wide[c].fillna("unknown").to_numpy(dtype=object) for c in wide.columns})
    return pd.DataFrame({"how": labels}, index=wide.index).reset_index()
