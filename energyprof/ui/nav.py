"""The app's pages in one table, the setup every page runs first (page config and the shared sidebar), links,
query parameters and one-shot messages.

Streamlit's pages-folder app: app.py is the home page and pages/NAME.py is served at /NAME; the generated
navigation is hidden (`client.showSidebarNavigation = false` in .streamlit/config.toml) and `page_setup`
draws this table as the sidebar instead."""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

from energyprof.read_only import is_read_only
from energyprof.runner import jobs
from energyprof.store import ACTIVE_STATUSES, Store
from energyprof.store.errors import read_only_sentence
from energyprof.ui.data import db_path, get_store, source_statuses, store_errors, writable
from energyprof.ui.format import md_escape
from energyprof.ui.sharing import read_only_sidebar


@dataclass(frozen=True)
class PageEntry:
    """One page of the app: its script (relative to app.py), the sidebar label and icon."""

    path: str
    label: str
    icon: str


RUNS_PAGE = "app.py"
RUN_PAGE = "pages/run.py"
NEW_PAGE = "pages/new.py"
COMPARE_PAGE = "pages/compare.py"
SOURCES_PAGE = "pages/sources.py"
SWEEP_PAGE = "pages/sweep.py"
PAGES: tuple[PageEntry, ...] = (
    PageEntry(RUNS_PAGE, "Runs", ":material/list:"),
    PageEntry(RUN_PAGE, "Run", ":material/monitoring:"),
    PageEntry(NEW_PAGE, "New profile", ":material/play_arrow:"),
    PageEntry(COMPARE_PAGE, "Compare", ":material/compare_arrows:"),
    PageEntry(SWEEP_PAGE, "Sweeps", ":material/stacked_line_chart:"),
    PageEntry(SOURCES_PAGE, "Power sources", ":material/power:"),
)
"""Every page, in sidebar order. A page's URL is its file name without `.py` (/run, /new…; app.py is /)."""

MAX_RUN_ID = 2**63 - 1
"""SQLite's largest integer: a larger run number cannot name a run."""
_RUN_NUMBER = re.compile(r"[0-9]{1,19}")
"""ASCII digits only: str.isdigit also accepts '²' or '٣', which int() then refuses."""


def page_setup(title: str) -> Store:
    """What every page runs first: page config, the sidebar (pages, database, active job, power source), and
    the Store; a database that cannot be opened is one sentence and the page stops there."""
    st.set_page_config(page_title=f"{title} · energyprof", page_icon=":material/bolt:", layout="wide")
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.path, label=page.label, icon=page.icon)
        st.divider()
    read_only_sidebar()
    with store_errors(db_path()):
        store = get_store()
        can_write = writable(store.path)
        if not can_write:
            st.warning(md_escape(read_only_sentence(store.path)), icon=":material/lock:")
        sidebar(store, reap=can_write and not is_read_only())
    return store


def sidebar(store: Store, *, reap: bool = True) -> None:
    """Database in use, the active job (with a link to it) and the power source `auto` would use.

    It runs before every page, so every page load first marks jobs whose process died as failed (`reap`; not
    on a read-only database, nor in read-only mode, where the dashboard writes nothing)."""
    if reap:
        jobs.reap_dead_jobs(store)
    with st.sidebar:
        st.markdown("**Database**")
        st.caption(md_escape(store.path))
        sidebar_job()
        statuses, auto = source_statuses()
        picked = next((s for s in statuses if s.name == auto), None)
        kind = "measured" if picked and picked.measured else "estimated"
        st.markdown(f"**Power source:** {md_escape(auto)} ({kind})")
        unavailable = [s.name for s in statuses if not s.available]
        if unavailable:
            st.caption("Not available here: " + md_escape(", ".join(unavailable)))


SIDEBAR_REFRESH_S = 6.0
"""How often the sidebar's job indicator polls (one narrow read: Store.job_progress)."""


@st.fragment(run_every=SIDEBAR_REFRESH_S)
def sidebar_job() -> None:
    """The active job with a link to it, refreshing itself while the page is open."""
    store = get_store()
    with store_errors(store.path):
        job = store.job_progress()
    if job and job["status"] in ACTIVE_STATUSES:
        pct = int(round(100 * (job.get("progress") or 0)))
        health = jobs.job_health(job)
        state = "not responding" if health.state == "not responding" else job.get("phase") or job["status"]
        st.page_link(RUN_PAGE, label=f"Job #{job['id']}: {md_escape(state)} {pct}%",
                     icon=":material/pause_circle:" if health.state == "not responding" else
                     ":material/hourglass_top:", query_params={"run": str(job["id"])})
    else:
        st.caption("No profiling job running.")


def run_link(run_id: int, text: str | None = None) -> None:
    st.page_link(RUN_PAGE, label=text or f"Open run #{run_id}", icon=":material/monitoring:",
                 query_params={"run": str(run_id)})


def sweep_link(sweep_id: str, text: str | None = None) -> None:
    st.page_link(SWEEP_PAGE, label=text or f"Open sweep {md_escape(sweep_id)}", icon=":material/stacked_line_chart:",
                 query_params={"sweep": sweep_id})


def parse_run_ids(text: str | None) -> tuple[list[int], list[str]]:
    """Run numbers from a query parameter such as "3,4": (the numbers, the pieces that are not run numbers)."""
    ids, bad = [], []
    for piece in (text or "").split(","):
        piece = piece.strip()
        if not piece:
            continue
        if _RUN_NUMBER.fullmatch(piece) and 0 < int(piece) <= MAX_RUN_ID:
            ids.append(int(piece))
        else:
            bad.append(piece)
    return ids, bad


def query_run_id(name: str = "run") -> int | None:
    """The run number in the URL (?run=N), or None; anything else is one sentence on the page."""
    text = st.query_params.get(name)
    if text is None or not text.strip():
        return None
    ids, bad = parse_run_ids(text)
    if len(ids) == 1 and not bad:
        return ids[0]
    st.error(f"The link asks for {name}={md_escape(text[:80])}, which is not a run number: pick a run below.")
    return None


def query_run_ids(name: str = "runs") -> list[int]:
    """The run numbers in the URL (?runs=3,4), each once, in order; pieces that are not run numbers are named in one
    warning."""
    found, bad = parse_run_ids(st.query_params.get(name))
    ids = list(dict.fromkeys(found))  # ?runs=1,1,1 is run 1, once
    if bad:
        shown = md_escape(", ".join(bad)[:80])
        st.warning(f"The link's {name}= holds {shown}, which {'is' if len(bad) == 1 else 'are'} not a run "
                   "number: left out.")
    return ids


def flash(message: str) -> None:
    """A message to show once at the top of the next page run."""
    st.session_state["energyprof_flash"] = message


def show_flash() -> None:
    message = st.session_state.pop("energyprof_flash", None)
    if message:
        st.success(message)
