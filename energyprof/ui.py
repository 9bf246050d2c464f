"""Shared Streamlit helpers for the dashboard pages: store access and caching, formatting, badges, sidebar,
the live job panel and download buttons. Pages import this, energyprof.store, energyprof.jobs,
energyprof.charts, energyprof.export, energyprof.power.registry and energyprof.profile.job (parameters only)
— never torch or transformers."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from energyprof import charts, jobs
from energyprof.export import export_csv, trace_json
from energyprof.power import registry
from energyprof.power.base import COMPONENTS, SourceStatus, total_energy_mj
from energyprof.profile.params import DEVICE_NAMES, DTYPE_NAMES, ProfileParams
from energyprof.store import ACTIVE_STATUSES, JobAlreadyRunning, Store, default_db_path

PAGES = "app_pages"
"""Folder of the page scripts. Not `pages/`: that name makes Streamlit run its legacy page discovery on a
fresh server's first request, so a deep link like /run?run=12 would open without app.py's navigation."""
RUNS_PAGE = f"{PAGES}/runs.py"
RUN_PAGE = f"{PAGES}/run.py"
NEW_PAGE = f"{PAGES}/new_profile.py"
COMPARE_PAGE = f"{PAGES}/compare.py"
SOURCES_PAGE = f"{PAGES}/sources.py"

BUILTIN_MODEL_NAMES: tuple[str, ...] = ("tiny", "small", "medium")
"""Names of energyprof.profile.models.BUILTIN_MODELS, kept here because that module imports torch
(tests/test_app_new_profile.py checks they match)."""
DEVICES: tuple[str, ...] = DEVICE_NAMES
DTYPES: tuple[str, ...] = DTYPE_NAMES

TIMELINE_ROWS = 3600
"""Rows the power timeline asks the store for (all components together), leaving room for shading and ticks."""
LIVE_REFRESH_S = 1.5
SIDEBAR_REFRESH_S = 3.0
CACHE_TTL_S = 600
APPORTIONED = ("time-apportioned: layer calls are shorter than the sampling window, their energy is a share "
               "of the window, not a measurement")
APPORTIONED_TOKENS = ("time-apportioned: some tokens cover only part of a sampling window, their energy is a "
                      "share of those windows, not a measurement")
DEMO_PARAMS: dict[str, Any] = ProfileParams(
    model="tiny", prompt="Where does the energy of a transformer go?", max_new_tokens=24, ignore_eos=True,
    device="cpu", source="auto", layers="blocks", repeats=2, warmup=0, baseline_s=1.0).to_dict()
"""The empty database's demo profile: the tiny built-in model, the auto power source, a few tokens."""


# -- store and cached reads ----------------------------------------------------------------------
def db_path() -> Path:
    """The database in use: $ENERGYPROF_DB, else the user data folder's file."""
    return default_db_path()


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The Store of the database in use (one per path and server process)."""
    return _store(str(db_path()))


def run_id_param(name: str = "run") -> int | None:
    """An integer query parameter, or None when missing or not a number."""
    value = st.query_params.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def whole(values: Mapping[str, float | None] | None) -> float | None:
    """Whole-system figure of a {component: value} dict: `package` when known, else the sum of the known parts
    (the store's rule, energyprof.power.base.total_energy_mj; NaN counts as unknown)."""
    known = {k: float(v) for k, v in (values or {}).items() if v is not None and not math.isnan(float(v))}
    return total_energy_mj(known)


def figures(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headline figures of a run summary, whole-system where a summary gives them per component.

    Keys: gross_j, net_j, j_per_token {phase: {mean, ci95}}, tokens_per_s, mean_w, peak_w, baseline_w,
    tokens (generated per repeat), tokens_total, repeats, warnings."""
    s = dict(summary or {})
    peak = s.get("peak_w")
    new = s.get("new_tokens")
    if isinstance(new, list):
        per_repeat = [int(n) for n in new if n is not None]
    else:
        per_repeat = [int(new)] if isinstance(new, int | float) else []
    return {
        "gross_j": s["total_energy_j"] if s.get("total_energy_j") is not None else whole(s.get("energy_j")),
        "net_j": s["net_total_energy_j"] if s.get("net_total_energy_j") is not None else whole(s.get("net_energy_j")),
        "j_per_token": s.get("j_per_token") or {},
        "tokens_per_s": s.get("tokens_per_s"),
        "mean_w": whole(s.get("mean_w")),
        "peak_w": whole(peak) if isinstance(peak, Mapping) else peak,
        "baseline_w": whole(s.get("baseline_w")),
        "tokens": max(per_repeat) if per_repeat else None,
        "tokens_total": (sum(per_repeat) * (1 if isinstance(new, list) else int(s.get("repeats") or 1))
                         if per_repeat else None),
        "repeats": int(s.get("repeats") or 1),
        "warnings": [str(w) for w in s.get("warnings") or []],
    }


def workload_components(summary: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per component over the measured repeats: gross and net energy (J) and mean power (W) from the summary."""
    s = dict(summary or {})
    gross, net, mean = (s.get(k) or {} for k in ("energy_j", "net_energy_j", "mean_w"))
    rows = [{"component": c, "energy_j": gross.get(c), "net_energy_j": net.get(c), "mean_w": mean.get(c)}
            for c in gross]
    return pd.DataFrame(rows, columns=["component", "energy_j", "net_energy_j", "mean_w"])


_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="energyprof-read")
"""The run page's independent store reads run side by side: SQLite releases the GIL while it works and WAL
lets readers share the file (a third off the first view of a 2-hour run)."""


def _read(store: Store, method: str, *args: Any, **kwargs: Any) -> Any:
    """One store read in a pool thread, closing that thread's connection after (no handle outlives the read)."""
    try:
        return getattr(store, method)(*args, **kwargs)
    finally:
        store.close()


def _views(store: Store, run: dict[str, Any], repeat: int) -> dict[str, Any]:
    run_id = run["id"]
    components = len((run.get("summary") or {}).get("mean_w") or {}) or len(COMPONENTS)
    reads = {
        "timeline": _READS.submit(_read, store, "power_timeline", run_id, max_points=TIMELINE_ROWS // components),
        "totals": _READS.submit(_read, store, "power_totals", run_id),
        "steps": _READS.submit(_read, store, "steps", run_id),
        "tokens": _READS.submit(_read, store, "tokens_with_energy", run_id, repeat),
        "layer_summary": _READS.submit(_read, store, "layer_summary", run_id),
        "matrix": _READS.submit(_read, store, "layer_step_matrix", run_id, repeat, max_cells=charts.MAX_ROWS),
    }
    span = store.step_span_ns(run_id)
    if span is not None:  # the workload alone: the steps' span and a margin of a tenth on each side
        margin = (span[1] - span[0]) // 10
        reads["workload_timeline"] = _READS.submit(
            _read, store, "power_timeline", run_id, max_points=TIMELINE_ROWS // components,
            start_ns=span[0] - margin, end_ns=span[1] + margin)
    views = {name: read.result() for name, read in reads.items()}
    summary = views["layer_summary"]
    layers = pd.DataFrame()
    if not summary.empty:
        layers = charts.whole_system(summary, ["layer_id", "name", "kind", "position"], ["energy_j", "net_energy_j"])
        extra = summary.groupby("layer_id", as_index=False).agg(calls=("calls", "max"), time_s=("time_s", "max"),
                                                                resolution=("resolution", "min"))
        layers = layers.merge(extra, on="layer_id", how="left").sort_values("position")
    views["layers"] = layers
    return views


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def _cached_views(db: str, run_id: int, status: str, created_at: float, repeat: int) -> dict[str, Any]:
    store = _store(db)
    run = store.get_run(run_id)
    return _views(store, run, repeat) if run else {}


def run_views(store: Store, run: dict[str, Any], repeat: int = 0) -> dict[str, Any]:
    """What the run page draws; cached for finished runs, keyed by (db, run, status, created_at, repeat)."""
    if run["status"] in ACTIVE_STATUSES:
        return _views(store, run, repeat)
    return _cached_views(str(store.path), run["id"], run["status"], run["created_at"], repeat)


@st.cache_data(ttl=60, show_spinner=False)
def source_statuses() -> tuple[list[SourceStatus], str]:
    """Every power source's status and the one `auto` picks (cached a minute: probing runs commands)."""
    statuses = registry.all_statuses()
    return statuses, registry.auto_name(statuses)


def clear_caches() -> None:
    """Forget cached reads and statuses (after writes this page made, and between tests)."""
    st.cache_data.clear()


# -- formatting ----------------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_energy(joules: Any) -> str:
    """Joules with a readable prefix (µJ, mJ, J, kJ, MJ); "—" when unknown, "≈ 0 J" below a microjoule."""
    j = _finite(joules)
    if j is None:
        return "—"
    if abs(j) < 1e-6:
        return "≈ 0 J"
    for scale, unit in ((1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ")):
        if abs(j) >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j * 1e6:.3g} µJ" if j else "0 J"


def fmt_power(watts: Any) -> str:
    """Watts with a readable prefix (mW, W, kW); "—" when unknown."""
    w = _finite(watts)
    if w is None:
        return "—"
    if abs(w) >= 1e3:
        return f"{w / 1e3:.3g} kW"
    if abs(w) >= 1 or w == 0:
        return f"{w:.3g} W"
    return f"{w * 1e3:.3g} mW"


def fmt_ci(stat: Mapping[str, Any] | None) -> str:
    """`mean ± ci95` in joules, both in the mean's unit (e.g. "16.6 ± 0.63 J"); "—" when unknown."""
    mean = _finite((stat or {}).get("mean"))
    if mean is None:
        return "—"
    ci = _finite((stat or {}).get("ci95"))
    if ci is None:
        return fmt_energy(mean)
    number, unit = fmt_energy(mean).rsplit(" ", 1)
    scale = {"MJ": 1e6, "kJ": 1e3, "J": 1.0, "mJ": 1e-3, "µJ": 1e-6}[unit]
    if number == "≈ 0" or not 0.01 <= ci / scale < 1000:
        return f"{fmt_energy(mean)} ± {fmt_energy(ci)}"
    half = ci / scale
    return f"{number} ± {half:.0f} {unit}" if half >= 100 else f"{number} ± {half:.2g} {unit}"


def fmt_rate(tokens_per_s: Any) -> str:
    r = _finite(tokens_per_s)
    return "—" if r is None else f"{r:.3g} tokens/s"


def fmt_seconds(seconds: Any) -> str:
    s = _finite(seconds)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{s:.3g} s"


def fmt_date(epoch: Any) -> str:
    e = _finite(epoch)
    return "—" if e is None else datetime.fromtimestamp(e).strftime("%Y-%m-%d %H:%M")


def is_estimated(run: Mapping[str, Any]) -> bool:
    """True when the run's figures come from an estimate (or no) power source."""
    return run.get("measured") is False or run.get("source") in ("estimate", "none")


def source_label(source: Any, measured: Any) -> str:
    """`source · measured` or `source · estimated` for tables."""
    if not source:
        return "—"
    return f"{source} · {'estimated' if measured is False or source in ('estimate', 'none') else 'measured'}"


def estimated_badge() -> str:
    return ":orange-badge[estimated]"


def measured_badge(run: Mapping[str, Any]) -> str:
    """A markdown badge saying whether the run's power figures are measured or estimated."""
    return estimated_badge() if is_estimated(run) else ":green-badge[measured]"


STATUS_BADGES = {"done": ":green-badge[done]", "running": ":blue-badge[running]", "queued": ":gray-badge[queued]",
                 "failed": ":red-badge[failed]", "cancelled": ":orange-badge[cancelled]"}


def status_badge(status: str) -> str:
    return STATUS_BADGES.get(status, f":gray-badge[{status}]")


def label(text: str, estimated: bool) -> str:
    """A metric or table label with "(estimated)" when the figure is an estimate."""
    return f"{text} (estimated)" if estimated else text


def apportioned(resolution: pd.Series | None) -> bool:
    """True when some interval is shorter than the windows covering it (resolution < 1)."""
    return resolution is not None and bool((resolution.dropna() < 0.999).any())


def apportioned_note(sentence: str = APPORTIONED) -> None:
    """The time-apportioned badge with its sentence."""
    badge, text = sentence.split(": ", 1)
    st.markdown(f":violet-badge[{badge}] {text}")


# -- drawing -------------------------------------------------------------------------------------
def chart(chart_obj: alt.TopLevelMixin, key: str | None = None) -> None:
    """Draw an Altair chart at the container's width."""
    st.altair_chart(chart_obj, width="stretch", key=key)


def csv_download(store: Store, run_id: int, what: str, label_text: str) -> None:
    """A download button for one full table of a run as CSV (built only when clicked)."""
    st.download_button(f"⬇ {label_text} (CSV)", data=partial(export_csv, store, run_id, what),
                       file_name=f"energyprof-run{run_id}-{what}.csv", mime="text/csv", on_click="ignore",
                       key=f"dl-{what}-{run_id}")


def trace_download(store: Store, run_id: int) -> None:
    """A download button for the run's Chrome/Perfetto trace (open it at ui.perfetto.dev)."""
    st.download_button("⬇ Perfetto trace (JSON)", data=partial(trace_json, store, run_id),
                       file_name=f"energyprof-run{run_id}-trace.json", mime="application/json",
                       on_click="ignore", key=f"dl-trace-{run_id}",
                       help="Open it at https://ui.perfetto.dev or chrome://tracing.")


def token_text_html(tokens: pd.DataFrame, limit: int = 2000) -> str:
    """The generated text with every token shaded by its energy; every token is HTML-escaped."""
    shown = tokens.head(limit)
    energy = pd.to_numeric(shown["energy_j"], errors="coerce")
    decode = energy[shown["phase"] != "prefill"].dropna()
    lo, hi = (float(decode.min()), float(decode.max())) if not decode.empty else (0.0, 1.0)
    spans = []
    for idx, phase, text, e in zip(shown["idx"], shown["phase"], shown["token_text"], energy, strict=True):
        alpha = 0.0 if pd.isna(e) or hi <= lo else min(1.0, max(0.0, (float(e) - lo) / (hi - lo)))
        color = f"rgba(245,133,24,{0.08 + 0.8 * alpha:.2f})" if phase != "prefill" else "rgba(76,120,168,0.35)"
        tip = f"{phase} step {int(idx)}: {fmt_energy(e)}"
        spans.append(f'<span style="background:{color};border-radius:3px" title="{html.escape(tip, quote=True)}">'
                     f"{html.escape(str(text if text is not None else ''), quote=True)}</span>")
    more = f"<p><em>… first {limit:,} of {len(tokens):,} tokens shown.</em></p>" if len(tokens) > limit else ""
    return ('<div class="energyprof-tokens" style="white-space:pre-wrap;line-height:1.9;font-family:monospace">'
            + "".join(spans) + "</div>" + more)


# -- sidebar and live job ------------------------------------------------------------------------
def sidebar(store: Store) -> None:
    """Database in use, the active job (with a link to it) and the power source `auto` would use.

    It runs before every page, so every page load first marks jobs whose process died as failed."""
    jobs.reap_dead_jobs(store)
    with st.sidebar:
        st.markdown("**Database**")
        st.caption(str(store.path))
        if store.active_profile_run():
            _sidebar_job()
        else:
            st.caption("No profiling job running.")
        statuses, auto = source_statuses()
        picked = next((s for s in statuses if s.name == auto), None)
        kind = "measured" if picked and picked.measured else "estimated"
        st.markdown(f"**Power source:** {auto} ({kind})")
        unavailable = [s.name for s in statuses if not s.available]
        if unavailable:
            st.caption("Not available here: " + ", ".join(unavailable))


@st.fragment(run_every=SIDEBAR_REFRESH_S)
def _sidebar_job() -> None:
    """The active job with a link to it, refreshing itself while the page is open."""
    active = get_store().active_profile_run()
    if active:
        pct = int(round(100 * (active.get("progress") or 0)))
        st.page_link(RUN_PAGE, label=f"Job #{active['id']}: {active.get('phase') or active['status']} {pct}%",
                     icon=":material/hourglass_top:", query_params={"run": str(active["id"])})
    else:
        st.caption("No profiling job running.")


@st.fragment(run_every=LIVE_REFRESH_S)
def live_job(run_id: int, cancel: bool = True) -> None:
    """Progress of a running job, refreshing itself; reruns the whole page when the job ends."""
    store = get_store()
    jobs.reap_dead_jobs(store)
    run = store.get_run(run_id)
    if run is None or run["status"] not in ACTIVE_STATUSES:
        st.rerun(scope="app")
    elapsed = time.time() - (run.get("started_at") or run["created_at"])
    progress = min(1.0, max(0.0, float(run.get("progress") or 0.0)))
    st.markdown(f"**Job #{run_id}** {status_badge(run['status'])} · phase **{run.get('phase') or 'starting'}**")
    st.progress(progress, text=f"{progress:.0%}")
    a, b, c = st.columns(3)
    a.metric("Tokens done", f"{run.get('tokens_done') or 0:,}")
    b.metric("Elapsed", fmt_seconds(elapsed))
    c.metric("Phase", run.get("phase") or "starting")
    totals = store.power_totals(run_id)
    timeline = store.power_timeline(run_id, max_points=TIMELINE_ROWS // max(1, len(totals)))
    chart(charts.power_timeline(timeline, None, estimated=is_estimated(run), height=220))
    if cancel and st.button("Cancel job", key=f"cancel-{run_id}", type="secondary"):
        cancel_job(store, run_id)


def cancel_job(store: Store, run_id: int) -> None:
    """Stop a job (SIGTERM; it keeps what it recorded) and say so."""
    if jobs.cancel_job(store, run_id):
        flash(f"Job #{run_id} cancelled; what it recorded is kept.")
    clear_caches()
    st.rerun(scope="app")


def flash(message: str) -> None:
    """A message to show once at the top of the next page run."""
    st.session_state["energyprof_flash"] = message


def show_flash() -> None:
    message = st.session_state.pop("energyprof_flash", None)
    if message:
        st.success(message)


def action_error(exc: BaseException) -> str:
    """One sentence for a failed action."""
    text = str(exc).strip() or exc.__class__.__name__
    return text if text.endswith(".") else text + "."


def run_link(run_id: int, text: str | None = None) -> None:
    st.page_link(RUN_PAGE, label=text or f"Open run #{run_id}", icon=":material/monitoring:",
                 query_params={"run": str(run_id)})


def launch(store: Store, params: dict[str, Any]) -> int | None:
    """Start a profiling job and return its run id; None (with the reason shown) when it cannot start."""
    try:
        run_id = jobs.launch_job(store, params)
    except (JobAlreadyRunning, OSError, ValueError) as exc:
        st.error(action_error(exc))
        return None
    clear_caches()
    return run_id
