"""Starting, following and cancelling a profiling job from the pages.

The live view is quiet while the job measures: every few seconds it reads only the job's progress row and
shows phase, progress, tokens done and elapsed time. A live power chart means another store read, an Altair
spec built in this server and a redraw in the browser, all on the machine being measured, so during a
measured phase it stays off unless asked for; between phases (loading, attributing) it is drawn."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from energyprof import charts
from energyprof.errors import user_message
from energyprof.read_only import ReadOnlyRefused, is_read_only, refuse_if_read_only
from energyprof.redact import redact, secret_from_env
from energyprof.run_views import TIMELINE_ROWS
from energyprof.runner import jobs
from energyprof.spec.params import ProfileParams
from energyprof.spec.sweep import SweepSpec
from energyprof.store import ACTIVE_STATUSES, JobAlreadyRunning, Store
from energyprof.ui.badges import is_estimated, status_badge
from energyprof.ui.data import clear_caches, get_store, store_errors
from energyprof.ui.drawing import chart
from energyprof.ui.format import fmt_seconds, md_escape
from energyprof.ui.nav import flash

DEMO_PARAMS: dict[str, Any] = ProfileParams(
    model="tiny", prompt="Where does the energy of a transformer go?", max_new_tokens=128, ignore_eos=True,
    device="cpu", source="auto", layers="blocks", repeats=3, warmup=1, baseline_s=1.0, target_ci=10.0,
    max_seconds=20.0).to_dict()
"""The empty database's demo profile: the tiny built-in model and the best power source here. One warm-up run
first (a cold first repeat can be ten times slower), then at least 3 repeats of 128 tokens and more until the
decode J/token's 95 % CI is within 10 % of its mean, for at most 20 s of repeats (a busy machine gets the cap and
the summary says the target was not met)."""

LIVE_REFRESH_S = 2.5
"""How often the live view polls the job's progress row."""
STALE_PROGRESS_S = 10.0
"""A job writes a heartbeat every ~2 s; when its row is older than this, ask energyprof.runner.jobs whether it died."""
UNMEASURED_PHASES = frozenset({"queued", "starting", "loading", "attributing", "done"})
"""Phases in which nothing is being measured; every other phase (baseline, warm-up, repeat i of R, replays…)
is measured."""
CHART_COST = (f"Drawing it reads the power table, builds a chart in this server and redraws it in your browser "
              f"every {LIVE_REFRESH_S:g} s: CPU (and on a Mac, GPU) work that lands in the figures being measured.")


def is_measured_phase(phase: str | None) -> bool:
    """True while the job measures (baseline, warm-up, repeats, replays): the live view then stays quiet."""
    return bool(phase) and phase not in UNMEASURED_PHASES


@st.fragment(run_every=LIVE_REFRESH_S)
def live_job(run_id: int, cancel: bool = True) -> None:
    """Progress of a running job, refreshing itself; reruns the whole page when the job ends."""
    live_job_body(run_id, cancel)


def live_job_body(run_id: int, cancel: bool = True) -> None:
    """One refresh of the live view: one narrow read; the power chart only between phases or when asked for."""
    store = get_store()
    with store_errors(store.path):
        job = store.job_progress(run_id)
        if (job is not None and time.time() - (job.get("heartbeat_at") or job["created_at"]) > STALE_PROGRESS_S
                and not is_read_only()):
            jobs.reap_dead_jobs(store)  # silent for a while: let energyprof.runner.jobs decide whether it died
            job = store.job_progress(run_id)
    if job is None or job["status"] not in ACTIVE_STATUSES:
        st.rerun(scope="app")
    phase = job.get("phase") or "starting"
    health = jobs.job_health(job)
    stalled = health.state == "not responding"
    elapsed = time.time() - (job.get("started_at") or job["created_at"])
    progress = min(1.0, max(0.0, float(job.get("progress") or 0.0)))
    st.markdown(f"**Job #{run_id}** {status_badge('not responding' if stalled else job['status'])} · phase "
                f"**{md_escape(phase)}**")
    if stalled:
        st.warning(not_responding_sentence(run_id, health, job.get("pid")), icon=":material/pause_circle:")
    st.progress(progress, text=f"{progress:.0%}")
    a, b, c = st.columns(3)
    a.metric("Tokens done", f"{job.get('tokens_done') or 0:,}")
    if stalled and health.heartbeat_age_s is not None:
        b.metric("Last heartbeat", f"{fmt_seconds(health.heartbeat_age_s)} ago")
    else:
        b.metric("Elapsed", fmt_seconds(elapsed))
    c.metric("Phase", md_escape(phase))
    if stalled:
        wanted = False
    elif is_measured_phase(phase):
        wanted = st.toggle("Show the live power chart during measurement", key=f"live-chart-{run_id}",
                           help=CHART_COST)
        if not wanted:
            st.caption("Live power chart paused so as not to disturb the measurement; it returns between phases "
                       "and when the job is done. " + CHART_COST)
    else:
        wanted = True
    if wanted:
        with store_errors(store.path):
            run = store.get_run(run_id) or {}
            totals = store.power_totals(run_id)
            timeline = store.power_timeline(run_id, max_points=TIMELINE_ROWS // max(1, len(totals)))
        chart(charts.power_timeline(timeline, None, estimated=is_estimated(run), height=220))
    if cancel and not is_read_only() and st.button("Cancel job", key=f"cancel-{run_id}", type="secondary"):
        cancel_job(store, jobs.RUN, run_id)


def not_responding_sentence(run_id: int, health: jobs.JobHealth, pid: int | None) -> str:
    """What a job that does not respond means and what to do (Markdown-safe)."""
    resume = f" (`kill -CONT {int(pid)}`)" if pid else ""
    return (f"Job #{run_id} is **{md_escape(health.label())}**: its process exists but is stopped or stuck, so the "
            f"progress shown is where it stopped. Continue it{resume} or cancel it.")


def shown_status(row: dict[str, Any]) -> str:
    """A run's or sweep's status for people, from energyprof.runner.jobs.job_health for an active one: "running", or
    "running · not responding, no heartbeat for 86 s" (row: the store's full row, with pid and times)."""
    status = row.get("status") or ""
    if status not in ACTIVE_STATUSES:
        return status
    health = jobs.job_health(row)
    return status if health.state == "alive" else f"{status} · {health.label()}"


def run_error(run: dict[str, Any]) -> str | None:
    """A run's error sentence for the page, through the secret scrubber (energyprof.redact): the key of the run's
    --api-key-env, when this process has it, and any `Bearer` credential are redacted."""
    name = (run.get("params") or {}).get("api_key_env")
    if isinstance(name, str) and name:
        secret_from_env(name)
    error = run.get("error")
    return redact(error) if isinstance(error, str) else None


STOPPED = {jobs.RUN.name: "Job #{} cancelled; what it recorded is kept.",
           jobs.SWEEP.name: "Sweep {} cancelled; its finished points are kept."}
"""What the page says after cancelling a job of each kind."""
CANCELLING = {jobs.RUN.name: "cancel job #{}", jobs.SWEEP.name: "cancel sweep {}"}
"""What cancelling a job of each kind is called when read-only mode refuses it."""


def refused(action: str) -> bool:
    """In read-only mode (energyprof.read_only): say on the page that `action` is refused, and return True, so that
    the caller does nothing; False otherwise. Every action of the pages asks this first."""
    try:
        refuse_if_read_only(action)
    except ReadOnlyRefused as exc:
        st.error(action_error(exc), icon=":material/lock:")
        return True
    return False


def cancel_job(store: Store, kind: jobs.JobKind, job_id: Any) -> None:
    """Stop a job or a sweep (SIGTERM; it keeps what it recorded) and say so."""
    if refused(CANCELLING[kind.name].format(job_id)):
        return
    with store_errors(store.path):
        cancelled = jobs.cancel(store, kind, job_id)
    if cancelled:
        flash(STOPPED[kind.name].format(job_id))
    clear_caches()
    st.rerun(scope="app")


def action_error(exc: BaseException) -> str:
    """One sentence for a failed action (Markdown-escaped: it may quote user input)."""
    return md_escape(user_message(exc, "Starting the job"))


def _started(store: Store, start: Callable[[], Any]) -> Any:
    """Run `start` (a launch); None, with the reason shown, when the job cannot start."""
    with store_errors(store.path):
        try:
            started = start()
        except (JobAlreadyRunning, OSError, ValueError) as exc:  # the database's own errors: store_errors
            st.error(action_error(exc))
            return None
    clear_caches()
    return started


def launch_sweep(store: Store, spec: SweepSpec, sweep_id: str, ray: dict[str, Any] | None = None) -> str | None:
    """Start a sweep job (its points on the Ray cluster `ray` names, when given) and return its id; None (with the
    reason shown) when it cannot start."""
    if refused("launch a sweep"):
        return None
    return _started(store, lambda: jobs.launch_sweep(store, spec.to_dict(), spec.size, sweep_id, ray=ray))


def launch(store: Store, params: dict[str, Any]) -> int | None:
    """Start a profiling job and return its run id; None (with the reason shown) when it cannot start."""
    if refused("launch a profile"):
        return None
    return _started(store, lambda: jobs.launch_job(store, params))


def delete_run(store: Store, run_id: int) -> bool | None:
    """Delete a finished run and everything recorded for it: True when deleted, False when it was not (still
    running), None when refused (read-only mode; the page says so)."""
    if refused(f"delete run #{run_id}"):
        return None
    with store_errors(store.path):
        deleted = store.delete_run(run_id)
    clear_caches()
    return deleted
