"""Exports of one run from the Store: CSV tables and a Chrome Trace Event Format trace for Perfetto.

The trace (open it at https://ui.perfetto.dev) has one process per run, one thread per repeat holding
the steps (tokens) with their layer calls nested inside, one counter track per power component, and (for a run
with layer_energy=replay) a `replay` thread holding every timed replay loop with its layer's figures.
Times are integer microseconds from the trace origin (the run's clock start, or the earliest stamp
if something precedes it); every start and end is floored to a whole microsecond, which keeps the
order of all stamps, and children are clamped inside their parents, so slices always nest.

Steps and layer calls carry `how` (measured / apportioned / estimated, energyprof.provenance) in the CSVs and the
trace, and their raw stamps `t0_ns`/`t1_ns` on the job clock (time.perf_counter_ns() of the job process) next to
the seconds from the run's start, so they can be joined with other traces taken on the same machine.

A component whose counter was stalled or implausible for the run (energyprof.analysis.counter_health) is unknown in
every export: empty cells (`how` = `unknown`) in the tokens and layers CSVs, empty energy in the samples CSV (whose
`counter_health` column says why), no counter track in the trace. Each tokens row says which components its
whole-system figure lacks (`whole_system_lacks`); the summary CSV and the trace's metadata carry the scope (what the
whole-system figures cover) and the health per component.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from energyprof.components import lacking, ordered
from energyprof.errors import EnergyprofError
from energyprof.power.base import COMPONENTS
from energyprof.provenance import replay_provenance, run_provenance
from energyprof.store import Store
from energyprof.summary import RunSummary
from energyprof.units import plain_or_none

CSV_KINDS: tuple[str, ...] = ("samples", "tokens", "layers", "summary", "calls", "layer-replay")
RUN_FIELDS: tuple[str, ...] = ("id", "kind", "status", "source", "measured", "model", "device", "dtype",
                               "created_at", "started_at", "ended_at", "clock_t0_ns", "tokens_done",
                               "error", "power_incomplete", "samples_skipped")
"""Columns of the run row that the summary export lists (besides params and summary)."""

TRACE_PID = 1
REPLAY_TID = 100_000
"""The trace thread of the replay loops (after every repeat's thread)."""
REPLAY_COLUMNS: tuple[str, ...] = (
    "layer", "kind", "phase", "step", "trials", "calls", "time_s_per_call", "energy_j_per_call",
    "net_energy_j_per_call", "power_w", "net_power_w", "ci95_j", "net_ci95_j", "cv", "flagged", "provenance",
    "method", "windows", "restore_subtracted")
"""The whole-system columns of `--what layer-replay`; per-component columns follow them."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is run as a formula by spreadsheets (CSV injection)."""


class UnknownRun(EnergyprofError, LookupError):
    """The run does not exist in this database."""


def _run(store: Store, run_id: int) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRun(f"run {run_id} does not exist in {store.path}")
    return run


def _ordered_components(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [c for c in COMPONENTS if c in names] + sorted(names - set(COMPONENTS))


# -- CSV -----------------------------------------------------------------------------------------
def export_csv(store: Store, run_id: int, what: str) -> str:
    """One table of a run as CSV text; `what` is one of CSV_KINDS. Raises UnknownRun, ValueError."""
    builders: dict[str, Callable[[Store, dict[str, Any]], pd.DataFrame]] = {
        "samples": samples_frame, "tokens": tokens_frame, "layers": layers_frame,
        "summary": summary_frame, "calls": calls_frame, "layer-replay": layer_replay_frame}
    if what not in builders:
        raise ValueError(f"unknown export {what!r}; choose one of {', '.join(CSV_KINDS)}")
    frame = neutralise_formulas(builders[what](store, _run(store, run_id)))
    return frame.to_csv(index=False, lineterminator="\r\n")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as formulas, prefixed with ' (numbers, e.g. -0.5 J, stay numbers).

    The CSV uses RFC 4180 line ends (CRLF), so a cell holding a carriage return or a newline is quoted."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutralised, na_action="ignore")
    return out


def _neutralised(value: Any) -> Any:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def samples_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """Power windows, one row per window and component: t0_s, t1_s, component, energy_j, power_w, measured, and the
    component's counter_health for the run (a stalled or implausible component's energy is left empty: unknown; a
    batched one's windows are raw counter differences, each a whole batch or nothing)."""
    df = store.power_samples(run["id"])
    cols = ["t0_s", "t1_s", "component", "energy_j", "power_w", "measured", "counter_health"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    origin = run["clock_t0_ns"] if run.get("clock_t0_ns") is not None else int(df["t0_ns"].min())
    summary = RunSummary.from_dict(run.get("summary"))
    health = df["component"].map(summary.counter_health)
    energy = pd.to_numeric(df["energy_mj"], errors="coerce").where(~df["component"].isin(summary.untrusted_counters()))
    return pd.DataFrame({
        "t0_s": (df["t0_ns"] - origin) / 1e9,
        "t1_s": (df["t1_ns"] - origin) / 1e9,
        "component": df["component"],
        "energy_j": energy / 1e3,
        "power_w": energy / 1e3 / ((df["t1_ns"] - df["t0_ns"]) / 1e9),
        "measured": run.get("measured"),
        "counter_health": health,
    })[cols]


def tokens_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """One row per step: times (s from the run's start, and t0_ns/t1_ns on the job clock), whole-system energy, its
    `how` and the components it lacks (`whole_system_lacks`, e.g. `cpu` when that counter stalled), then
    energy_j_<component>, net_energy_j_<component> and how_<component>.

    A step holds n_tokens tokens (with a batch: one per sequence; the prefill: every prompt token), so
    energy_j_per_token (energy_j / n_tokens) follows energy_j."""
    tokens = _int_token_ids(store.tokens_with_energy(run["id"]))
    if "energy_j" in tokens and not tokens.empty:
        tokens.insert(tokens.columns.get_loc("energy_j") + 1, "energy_j_per_token",
                      tokens["energy_j"] / tokens["n_tokens"].where(tokens["n_tokens"] > 0))
    energy = store.step_energy(run["id"])
    if tokens.empty or energy.empty:
        return tokens
    comps = _ordered_components(energy["component"].unique())
    wide = energy.pivot(index=["repeat", "idx"], columns="component", values=["energy_j", "net_energy_j", "how"])
    out = pd.DataFrame(index=wide.index)
    for value in ("energy_j", "net_energy_j", "how"):
        for comp in comps:
            column = (value, comp)
            out[f"{value}_{comp}"] = wide[column] if column in wide.columns else float("nan")
    merged = tokens.merge(out.reset_index(), on=["repeat", "idx"], how="left")
    per_row = merged[[f"energy_j_{c}" for c in comps]].apply(pd.to_numeric, errors="coerce").to_numpy()
    lacks = [", ".join(lacking(dict(zip(comps, row.tolist(), strict=True)))) for row in per_row]
    merged.insert(merged.columns.get_loc("how") + 1, "whole_system_lacks", lacks)
    return merged


def _int_token_ids(tokens: pd.DataFrame) -> pd.DataFrame:
    """token_id as a nullable integer (a prefill step has none, which would make the column float)."""
    if "token_id" in tokens and not tokens.empty:
        tokens["token_id"] = pd.to_numeric(tokens["token_id"], errors="coerce").round().astype("Int64")
    return tokens


def layers_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """Per layer and component: calls, time_s, energy_j, net_energy_j, resolution (store.layer_summary)."""
    return store.layer_summary(run["id"])


def calls_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """Every layer call: repeat, step_idx, layer, kind, t0_s, t1_s (from the run's clock), t0_ns, t1_ns (the job
    clock), time_s, energy_j, resolution, how; the `other` pseudo-layer has no times."""
    df = store.layer_calls(run["id"])
    cols = ["repeat", "step_idx", "layer", "kind", "t0_s", "t1_s", "t0_ns", "t1_ns", "time_s", "energy_j",
            "resolution", "how"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    origin = run.get("clock_t0_ns") or 0
    t0 = pd.to_numeric(df["t0_ns"], errors="coerce")
    t1 = pd.to_numeric(df["t1_ns"], errors="coerce")
    return df.assign(t0_s=(t0 - origin) / 1e9, t1_s=(t1 - origin) / 1e9, t0_ns=t0.astype("Int64"),
                     t1_ns=t1.astype("Int64"), time_s=df["time_ns"] / 1e9,
                     energy_j=pd.to_numeric(df["energy_mj"], errors="coerce") / 1e3)[cols]


def layer_replay_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """Per replayed layer and phase: REPLAY_COLUMNS (per call, whole system; flagged: a 95 % CI wider than the
    mean), then energy_j_per_call_<component>, net_energy_j_per_call_<component> and ci95_j_<component>."""
    df = store.layer_replay(run["id"])
    if df.empty:
        return pd.DataFrame(columns=list(REPLAY_COLUMNS))
    source_kind = run_provenance(run)
    out = df.rename(columns={"step_idx": "step"}).assign(
        flagged=df["flagged"].astype(bool), restore_subtracted=df["restore_subtracted"].astype(bool),
        provenance=[replay_provenance(source_kind, m) for m in df["method"]])[list(REPLAY_COLUMNS) + ["layer_id"]]
    energy = store.layer_replay_energy(run["id"])
    if not energy.empty:
        wide = energy.pivot_table(index=["layer_id", "phase"], columns="component",
                                  values=["energy_j_per_call", "net_energy_j_per_call", "ci95_j"], aggfunc="first",
                                  dropna=False)
        comps = _ordered_components(energy["component"].unique())
        extra = pd.DataFrame(index=wide.index)
        for value in ("energy_j_per_call", "net_energy_j_per_call", "ci95_j"):
            for comp in comps:
                column = (value, comp)
                extra[f"{value}_{comp}"] = wide[column] if column in wide.columns else float("nan")
        out = out.merge(extra.reset_index(), on=["layer_id", "phase"], how="left")
    return out.drop(columns=["layer_id"])


def summary_frame(store: Store, run: dict[str, Any]) -> pd.DataFrame:
    """One row per key: section (run, params, summary), key (dotted for nested dicts), value."""
    rows = [("run", k, run.get(k)) for k in RUN_FIELDS]
    rows += [("params", k, v) for k, v in _flatten(run.get("params") or {})]
    rows += [("summary", k, v) for k, v in _flatten(run.get("summary") or {})]
    return pd.DataFrame(rows, columns=["section", "key", "value"])


def _flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys; lists become JSON text so one cell holds one value."""
    out: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple | dict):
            out.append((name, json.dumps(value, sort_keys=True, default=str)))
        else:
            out.append((name, value))
    return out


# -- trace ---------------------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """JSON-safe scalar: NaN/inf and pandas NA become None; numpy scalars become Python numbers."""
    return None if value is pd.NA else plain_or_none(value)


def _us(t_ns: int, origin_ns: int) -> int:
    """Integer microseconds from the origin, floored (monotone, so stamp order is kept)."""
    return (int(t_ns) - origin_ns) // 1000


def _trace_origin(run: dict[str, Any], starts: Iterable[int]) -> int:
    candidates = [int(t) for t in starts]
    if run.get("clock_t0_ns") is not None:
        candidates.append(int(run["clock_t0_ns"]))
    return min(candidates) if candidates else 0


def _step_name(phase: str, idx: int, token_text: Any) -> str:
    if phase == "prefill":
        return "prefill"
    if phase == "decode":
        return f"decode #{idx} {token_text!r}" if isinstance(token_text, str) else f"decode #{idx}"
    return f"{phase} #{idx}"


def _slice(name: str, cat: str, tid: int, ts: int, end: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "cat": cat, "ph": "X", "pid": TRACE_PID, "tid": tid, "ts": ts, "dur": max(0, end - ts),
            "args": {k: _finite(v) for k, v in args.items()}}


def _nest(calls: list[tuple[int, int, dict[str, Any]]], lo: int, hi: int) -> list[tuple[int, int, dict[str, Any]]]:
    """Clamp (start, end, payload) slices into [lo, hi] and into each other so that they nest properly.

    Sorted by start, longest first; a slice that starts inside an open one but ends after it is cut at
    the open one's end (rounding or hook jitter), never the other way round."""
    out, stack = [], [hi]
    for start, end, payload in sorted(calls, key=lambda c: (c[0], -c[1])):
        start = min(max(start, lo), hi)
        while len(stack) > 1 and stack[-1] <= start:
            stack.pop()
        end = max(start, min(end, stack[-1]))
        out.append((start, end, payload))
        stack.append(end)
    return out


def _step_events(store: Store, run: dict[str, Any], origin: int, steps: pd.DataFrame) -> list[dict[str, Any]]:
    """Step slices with their layer calls nested inside, one thread per repeat."""
    run_id = run["id"]
    tokens = _int_token_ids(store.tokens_with_energy(run_id)).set_index(["repeat", "idx"])
    per_comp = store.step_energy(run_id)
    comp_energy: dict[tuple[int, int], dict[str, Any]] = {}
    for r in per_comp.itertuples(index=False):
        comp_energy.setdefault((int(r.repeat), int(r.idx)), {}).update(
            {f"energy_j.{r.component}": r.energy_j, f"how.{r.component}": r.how})
    calls = store.layer_calls(run_id)
    calls = calls[calls["t0_ns"].notna() & calls["t1_ns"].notna()] if not calls.empty else calls
    by_step: dict[tuple[int, int], list[tuple[int, int, dict[str, Any]]]] = {}
    for c in calls.itertuples(index=False):
        by_step.setdefault((int(c.repeat), int(c.step_idx)), []).append((
            _us(c.t0_ns, origin), _us(c.t1_ns, origin),
            {"name": c.layer, "cat": f"layer.{c.kind}", "args": {
                "energy_j": None if pd.isna(c.energy_mj) else c.energy_mj / 1e3,
                "resolution": c.resolution, "how": c.how, "time_ms": c.time_ns / 1e6, "step": int(c.step_idx)}}))
    events = []
    for s in steps.itertuples(index=False):
        key = (int(s.repeat), int(s.idx))
        tid = key[0] + 1
        ts, end = _us(s.t0_ns, origin), _us(s.t1_ns, origin)
        tok = tokens.loc[key] if key in tokens.index else None
        args = {"phase": s.phase, "idx": key[1], "repeat": key[0],
                "energy_j": None if tok is None else tok["energy_j"],
                "net_energy_j": None if tok is None else tok["net_energy_j"],
                "resolution": None if tok is None else tok["resolution"],
                "how": None if tok is None else tok["how"],
                "t0_ns": int(s.t0_ns), "t1_ns": int(s.t1_ns),
                "n_tokens": None if tok is None else tok["n_tokens"],
                "token_id": None if tok is None else tok["token_id"],
                **comp_energy.get(key, {})}
        text = None if tok is None else tok["token_text"]
        events.append(_slice(_step_name(s.phase, key[1], text), f"step.{s.phase}", tid, ts, end, args))
        for start, stop, p in _nest(by_step.get(key, []), ts, end):
            events.append(_slice(p["name"], p["cat"], tid, start, stop, p["args"]))
    return events


def _counter_events(run: dict[str, Any], samples: pd.DataFrame, origin: int) -> list[dict[str, Any]]:
    """One counter track per component: window mean W at each window start, 0 where no window covers; none for a
    component whose counter was stalled or implausible (unknown for the run)."""
    suffix = "W" if run.get("measured") is not False else "W, estimated"
    untrusted = RunSummary.from_dict(run.get("summary")).untrusted_counters()
    events = []
    for comp in _ordered_components(samples["component"].unique()):
        if comp in untrusted:
            continue
        name = f"power {comp} ({suffix})"
        rows = samples[samples["component"] == comp].sort_values(["t0_ns", "t1_ns"])
        last_end: int | None = None
        for r in rows.itertuples(index=False):
            t0, t1 = int(r.t0_ns), int(r.t1_ns)
            if last_end is not None and t0 > last_end:
                events.append(_counter(name, _us(last_end, origin), 0.0))
            power = None if pd.isna(r.energy_mj) else r.energy_mj / 1e3 / ((t1 - t0) / 1e9)
            events.append(_counter(name, _us(t0, origin), 0.0 if power is None else power))
            last_end = t1 if last_end is None else max(last_end, t1)
        if last_end is not None:
            events.append(_counter(name, _us(last_end, origin), 0.0))
    return events


def _counter(name: str, ts: int, watts: float) -> dict[str, Any]:
    return {"name": name, "ph": "C", "pid": TRACE_PID, "ts": ts, "args": {"W": _finite(float(watts))}}


def _block_events(run: dict[str, Any], origin: int) -> list[dict[str, Any]]:
    """A `measure` run's block as one slice (its interval is in the summary)."""
    summary = RunSummary.from_dict(run.get("summary"))
    t0, t1 = summary.block_t0_ns, summary.block_t1_ns
    if t0 is None or t1 is None:
        return []
    return [_slice(summary.label or "measured block", "measure", 1, _us(t0, origin), _us(t1, origin),
                   {"energy_j": summary.gross_total_j, "mean_w": summary.mean_total_w,
                    "resolution": summary.resolution})]


def _replay_events(store: Store, run: dict[str, Any], origin: int) -> list[dict[str, Any]]:
    """One slice per timed replay loop on the replay thread, with its trial's energy and its layer's figures."""
    trials = store.replay_trials(run["id"])
    if trials.empty:
        return []
    rows = store.layer_replay(run["id"]).set_index(["layer_id", "phase"])
    events = []
    for t in trials.itertuples(index=False):
        key = (int(t.layer_id), t.phase)
        layer = rows.loc[key] if key in rows.index else None
        args = {"phase": t.phase, "step": int(t.step_idx), "trial": int(t.trial), "calls": int(t.calls),
                "energy_j": t.energy_j, "net_energy_j": t.net_energy_j}
        if layer is not None:
            args.update({f"layer.{k}": layer[k] for k in ("energy_j_per_call", "net_energy_j_per_call", "power_w",
                                                         "net_power_w", "ci95_j", "cv", "method")})
        events.append(_slice(f"replay {t.layer} ({t.phase}) {int(t.trial)}", f"replay.{t.kind}", REPLAY_TID,
                             _us(t.t0_ns, origin), _us(t.t1_ns, origin), args))
    return events


def _metadata_events(run: dict[str, Any], tids: Iterable[int]) -> list[dict[str, Any]]:
    title = f"run {run['id']} ({run['kind']})" + (f": {run['model']}" if run.get("model") else "")
    events = [{"name": "process_name", "ph": "M", "pid": TRACE_PID, "tid": 0, "args": {"name": title}}]
    for tid in sorted(set(tids)):
        label = "measured block" if run["kind"] == "measure" else f"repeat {tid - 1}"
        label = "replay (each layer alone, measured per layer)" if tid == REPLAY_TID else label
        events.append({"name": "thread_name", "ph": "M", "pid": TRACE_PID, "tid": tid, "args": {"name": label}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": TRACE_PID, "tid": tid,
                       "args": {"sort_index": tid}})
    return events


def export_trace(store: Store, run_id: int) -> dict[str, Any]:
    """The run as a Chrome Trace Event Format object (json.dumps it; opens in ui.perfetto.dev)."""
    run = _run(store, run_id)
    steps = store.step_times_ns(run_id)
    samples = store.power_samples(run_id)
    summary = run.get("summary") or {}
    starts = [*steps["t0_ns"].tolist(), *samples["t0_ns"].tolist()]
    starts += [summary["block_t0_ns"]] if summary.get("block_t0_ns") is not None else []
    origin = _trace_origin(run, starts)
    timed = _step_events(store, run, origin, steps) + _block_events(run, origin) + _replay_events(store, run, origin)
    timed += _counter_events(run, samples, origin) if not samples.empty else []
    timed.sort(key=lambda e: (e["ts"], e["ph"] != "C", -e.get("dur", 0)))
    meta = _metadata_events(run, (e["tid"] for e in timed if e["ph"] == "X"))
    measured = run.get("measured")
    health = RunSummary.from_dict(summary)
    return {
        "traceEvents": meta + timed,
        "displayTimeUnit": "ms",
        "metadata": {k: _finite(v) for k, v in {
            "energyprof_run": run["id"], "kind": run["kind"], "status": run["status"], "model": run.get("model"),
            "device": run.get("device"), "dtype": run.get("dtype"), "source": run.get("source"),
            "power": "estimated" if measured is False else "measured" if measured else "unknown",
            "created_at": run.get("created_at"), "clock_t0_ns": run.get("clock_t0_ns"),
            "trace_origin_ns": origin, "scope": health.total_sentence(),
            "counter_health": ", ".join(f"{c} {health.counter_health[c]}" for c in ordered(health.counter_health))
            or None,
            "counters": "mean power of each sample window, held until the next; 0 where no window or an "
                        "unknown value covers the time (no data, not 0 W)"}.items()},
    }


def trace_json(store: Store, run_id: int) -> str:
    """export_trace as strict JSON text (no NaN)."""
    return json.dumps(export_trace(store, run_id), allow_nan=False, separators=(",", ":"))
