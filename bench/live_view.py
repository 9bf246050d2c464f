"""Does watching a job disturb it? The dashboard server's CPU while a profiling job runs with its run page open in
headless Chromium, and the job's decode throughput with the page open ÷ closed (issue 9).

Set up as a user would: `streamlit run app.py` from the repository with the shipped .streamlit/config.toml
(run from README's virtualenv inside the repository folder, that folder holds the virtualenv too), a fresh
database, each job launched exactly as the dashboard launches it (energyprof.runner.jobs.launch_job: the `energyprof
job` subprocess), model `small` on cpu with the estimate source. The server runs throughout; jobs alternate
between no page open and the job's run page open in Chromium (opened as the job starts, as after a click on
Launch), after one discarded warm-up job (full mode). While a job runs the bench polls its phase
(Store.job_progress, 5 times a second) and reads the CPU time (user + system, psutil) of the server process and
of every Chromium process whenever the job enters or leaves a measured phase (ui.is_measured_phase: baseline,
warm-up, repeats); CPU seconds ÷ wall seconds over the measured phases = cores. Throughput is each run's decode
tokens/s from its summary; the ratio is the median with the page open ÷ the median with it closed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil

from bench.rows import row
from tests.dashboard_server import CHROMIUM, CHROMIUM_ARGS, start, stop

SERVER_CPU_TARGET = 5.0
"""% of one core the server may use during measured phases with the run page open."""
THROUGHPUT_TARGET = 0.97
POLL_S = 0.2
JOB_TIMEOUT_S = 900


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"job": {"max_new_tokens": 24, "repeats": 2, "warmup": 1, "baseline_s": 2.0}, "pairs": 1,
                "warmup_job": False}
    return {"job": {"max_new_tokens": 128, "repeats": 3, "warmup": 1, "baseline_s": 3.0}, "pairs": 3,
            "warmup_job": True}


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        with suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _chromium() -> list[psutil.Process]:
    """Every Chromium process this bench started (through Playwright)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with suppress(psutil.Error):
            if "chrom" in proc.name() or "headless" in proc.name():
                found.append(proc)
    return found


def _follow(store: Any, run_id: int, server: psutil.Process) -> dict[str, float]:
    """Wait for the job to end; CPU seconds of the server and of Chromium over the measured phases, and their wall
    seconds. CPU is read only when the job enters or leaves a measured phase (the bench's own work stays small)."""
    from energyprof.store import ACTIVE_STATUSES
    from energyprof.ui import is_measured_phase

    totals = {"wall_s": 0.0, "server_s": 0.0, "chromium_s": 0.0}
    inside: tuple[float, float, float] | None = None
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = store.job_progress(run_id)
        measured = job["status"] in ACTIVE_STATUSES and is_measured_phase(job["phase"])
        if measured and inside is None:
            inside = (time.monotonic(), _cpu_s([server]), _cpu_s(_chromium()))
        elif not measured and inside is not None:
            totals["wall_s"] += time.monotonic() - inside[0]
            totals["server_s"] += _cpu_s([server]) - inside[1]
            totals["chromium_s"] += _cpu_s(_chromium()) - inside[2]
            inside = None
        if job["status"] not in ACTIVE_STATUSES:
            return totals
        time.sleep(POLL_S)
    raise RuntimeError(f"job {run_id} did not finish within {JOB_TIMEOUT_S} s")


def _one_job(store: Any, params: dict[str, Any], server: psutil.Process, browser: Any, url: str,
             page_open: bool) -> dict[str, Any]:
    """Launch one job as the dashboard does, with or without its run page open; its figures and CPU use."""
    from energyprof.runner import jobs
    from energyprof.summary import RunSummary

    run_id = jobs.launch_job(store, params)
    page = None
    if page_open:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/run?run={run_id}")
        page.get_by_text(f"Job #{run_id}").first.wait_for(timeout=60_000)
    try:
        cpu = _follow(store, run_id, server)
    finally:
        if page is not None:
            page.close()
    run = store.get_run(run_id)
    with suppress(ChildProcessError, TypeError):
        os.waitpid(run.get("pid"), 0)  # the job is this process's child: collect it
    if run["status"] != "done":
        raise RuntimeError(f"job {run_id} ended {run['status']}: {run.get('error')}")
    summary = RunSummary.from_dict(run.get("summary"))
    decode = summary.j_per_token.get("decode")
    return {**cpu, "tokens_per_s": summary.tokens_per_s, "j_per_token": None if decode is None else decode.mean,
            "j_per_token_ci95": None if decode is None else decode.ci95}


def measure(quick: bool) -> dict[str, Any]:
    """Closed/open jobs against one server; the per-condition results."""
    from playwright.sync_api import sync_playwright

    from energyprof.spec.params import ProfileParams
    from energyprof.store import Store

    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it (apt-get install chromium) to run this benchmark.")
    sizes = _sizes(quick)
    params = ProfileParams(model="small", device="cpu", source="estimate", layers="blocks", ignore_eos=True,
                           **sizes["job"]).to_dict()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    results: dict[str, list[dict[str, Any]]] = {"closed": [], "open": []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "live-view.sqlite3"
        store = Store(db)
        proc, url = start(db, Path(tmp) / "streamlit.log")
        try:
            server = psutil.Process(proc.pid)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    if sizes["warmup_job"]:
                        _one_job(store, params, server, browser, url, page_open=False)
                    for i in range(sizes["pairs"]):
                        for condition in (("closed", "open") if i % 2 == 0 else ("open", "closed")):
                            results[condition].append(
                                _one_job(store, params, server, browser, url, page_open=condition == "open"))
                finally:
                    browser.close()
        finally:
            stop(proc)
            store.close()
    return {"params": params, "pairs": sizes["pairs"], **results}


def _cores(jobs_: list[dict[str, Any]], key: str) -> float:
    wall = sum(j["wall_s"] for j in jobs_)
    return sum(j[key] for j in jobs_) / wall if wall > 0 else float("nan")


def run(quick: bool) -> list[dict[str, Any]]:
    result = measure(quick)
    closed, opened = result["closed"], result["open"]
    tps = {name: statistics.median(j["tokens_per_s"] for j in jobs_) for name, jobs_ in (("closed", closed),
                                                                                          ("open", opened))}
    jpt = {name: statistics.median(j["j_per_token"] for j in jobs_) for name, jobs_ in (("closed", closed),
                                                                                         ("open", opened))}
    p = result["params"]
    setup = (f"small on cpu, estimate source, {p['max_new_tokens']} tokens x {p['repeats']} repeats (+{p['warmup']} "
             f"warm-up, {p['baseline_s']:g} s baseline) per job, launched by energyprof.runner.jobs.launch_job; "
             f"{result['pairs']} closed/open pair(s), alternated; `streamlit run app.py` with the shipped config; "
             f"measured phases {sum(j['wall_s'] for j in opened):.0f} s with the page open")
    return [
        row("dashboard server CPU, run page open, measured phases", 100 * _cores(opened, "server_s"),
            "% of one core", setup + "; headless Chromium", at_most=SERVER_CPU_TARGET),
        row("decode tokens/s, run page open / closed", tps["open"] / tps["closed"], "ratio",
            setup + f"; medians {tps['open']:.3g} / {tps['closed']:.3g} tokens/s", at_least=THROUGHPUT_TARGET),
        row("dashboard server CPU, no page open, measured phases", 100 * _cores(closed, "server_s"), "% of one core",
            setup),
        row("Chromium CPU, run page open, measured phases", 100 * _cores(opened, "chromium_s"), "% of one core",
            setup + "; every Chromium process"),
        row("decode J/token (estimated), run page open / closed", jpt["open"] / jpt["closed"], "ratio",
            setup + f"; medians {jpt['open']:.3g} / {jpt['closed']:.3g} J"),
        row("decode J/token, open - closed, in closed runs' 95% CI half-widths", _ci_units(jpt, closed),
            "CI half-widths", setup + "; |median open - median closed| / median CI half-width of the closed runs",
            at_most=1.0),
    ]


def _ci_units(jpt: dict[str, float], closed: list[dict[str, Any]]) -> float:
    """How far the watched runs' J/token is from the unwatched runs', in the unwatched runs' own CI half-widths."""
    cis = [j["j_per_token_ci95"] for j in closed if j.get("j_per_token_ci95") is not None]
    if not cis or statistics.median(cis) <= 0:
        return float("nan")
    return abs(jpt["open"] - jpt["closed"]) / statistics.median(cis)


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
