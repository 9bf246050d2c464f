"""What else the machine was doing: CPU time of every *other* process during the idle baseline and each repeat.

The idle baseline is subtracted from the workload's energy on the assumption that everything except the
workload stays the same. A browser redrawing, a dashboard rerunning or a build starting during the workload
breaks that assumption, and nothing in the power figures shows it. So the job snapshots every process's CPU
time (psutil) at the edges of the baseline and of each repeat, and the run is flagged **disturbed** when the
other processes' mean CPU use during the workload differs from the baseline's by more than
`DISTURBED_CORES`. This process and its children (e.g. powermetrics) are not "other", nor are the processes the
workload names as its own (an endpoint run's server: energyprof.runtimes.endpoint.server). Processes that ended
inside a span are not counted (their CPU time is gone with them). The dashboard's own processes (the
Streamlit server, the browser) are named as such where they can be recognised by their command line, and so are
Ray's (a run on a Ray node: the raylet, the worker that started the job, Ray's services), whose CPU is also kept
apart (`ray_cores`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

from energyprof.summary import ProcessCpu

TOP_PROCESSES = 5
DASHBOARD_WORDS = ("streamlit", "chromium", "chrome", "firefox", "safari", "webkit", "msedge")
"""Command-line words that mark a process as part of the dashboard (the server or a browser showing it)."""
RAY_BINARIES = ("raylet", "gcs_server", "plasma_store")
RAY_TAG = " (Ray)"
"""Appended to the name of Ray's own processes (raylet, GCS, `ray::…` workers, its Python services), which run on
every node of a Ray cluster: a run on a node measures them as background and names them."""


@dataclass
class SpanCpu:
    """Background CPU of one span: total mean cores of other processes, and the busiest of them; `ray_cores`: the
    part of Ray's processes (None when no Ray process was running)."""

    name: str
    seconds: float
    cores: float
    top: list[ProcessCpu] = field(default_factory=list)
    ray_cores: float | None = None


Snapshot = dict[tuple[int, float], tuple[str, float, bool]]
"""(pid, create time) -> (name, CPU seconds so far, is a dashboard process)."""


def _mine() -> set[int]:
    me = psutil.Process()
    try:
        return {me.pid, *(c.pid for c in me.children(recursive=True))}
    except psutil.Error:
        return {me.pid}


INTERPRETERS = ("python", "node", "ruby", "java", "perl", "sh", "bash", "zsh")


def process_label(name: str, cmdline: list[str] | None) -> str:
    """The process name, and for an interpreter the script or module it runs (`python -m pytest`)."""
    args = list(cmdline or [])[1:]
    if not args or not name.lower().startswith(INTERPRETERS):
        return name
    if args[0] == "-m" and len(args) > 1:
        return f"{name} -m {args[1]}"[:60]
    script = next((a for a in args if not a.startswith("-")), "")
    return f"{name} {script.rsplit('/', 1)[-1]}"[:60] if script else name


def is_ray(name: str, cmdline: list[str] | None) -> bool:
    """Ray's own processes: its binaries, `ray::…` workers and agents, and Python services run from Ray's package."""
    if name.startswith("ray::") or name in RAY_BINARIES:
        return True
    return any("/ray/" in arg.replace("\\", "/") for arg in list(cmdline or [])[:3])


def _is_dashboard(cmdline: list[str] | None, name: str) -> bool:
    text = " ".join(cmdline or [name]).lower()
    return any(word in text for word in DASHBOARD_WORDS)


def snapshot() -> Snapshot:
    """CPU seconds (user + system) of every other process right now."""
    mine = _mine()
    out: Snapshot = {}
    for proc in psutil.process_iter(["pid", "name", "cpu_times", "create_time", "cmdline"], ad_value=None):
        info = proc.info
        times = info.get("cpu_times")
        if info["pid"] in mine or times is None:
            continue
        name = (info.get("name") or "").strip() or f"pid {info['pid']}"  # Ray pads the titles it sets
        label = process_label(name, info.get("cmdline"))
        if is_ray(name, info.get("cmdline")):
            label += RAY_TAG
        out[(info["pid"], info.get("create_time") or 0.0)] = (label, times.user + times.system,
                                                              _is_dashboard(info.get("cmdline"), name))
    return out


def compare(before: Snapshot, after: Snapshot, seconds: float, name: str) -> SpanCpu:
    """Per other process, CPU seconds between two snapshots ÷ wall seconds (a process born inside counts whole)."""
    if seconds <= 0:
        return SpanCpu(name, 0.0, 0.0)
    used = []
    for key, (pname, cpu, dash) in after.items():
        start = before.get(key, (pname, 0.0, dash))[1]
        if cpu - start > 0:
            used.append(ProcessCpu(key[0], pname, (cpu - start) / seconds, dash))
    used.sort(key=lambda p: p.cores, reverse=True)
    ray_running = any(label.endswith(RAY_TAG) for label, _, _ in after.values())
    ray_cores = sum(p.cores for p in used if p.name.endswith(RAY_TAG)) if ray_running else None
    return SpanCpu(name, seconds, sum(p.cores for p in used), used[:TOP_PROCESSES], ray_cores)


class BackgroundMonitor:
    """Records the other processes' CPU over named spans (`with monitor.span("baseline"): ...`)."""

    def __init__(self, exclude: Callable[[], Collection[int]] | None = None) -> None:
        self.spans: list[SpanCpu] = []
        self.exclude = exclude or (lambda: ())
        """The pids that belong to the workload (asked at every snapshot: a server may start children)."""

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        before, t0 = self._snapshot(), time.monotonic()
        try:
            yield
        finally:
            after, t1 = self._snapshot(), time.monotonic()
            self.spans.append(compare(before, after, t1 - t0, name))

    def _snapshot(self) -> Snapshot:
        """Every other process's CPU seconds, without the workload's own processes."""
        excluded = set(self.exclude())
        return {key: value for key, value in snapshot().items() if key[0] not in excluded}

    def mean(self, prefix: str) -> SpanCpu | None:
        """Time-weighted mean over the spans whose name starts with prefix, with the busiest processes overall."""
        spans = [s for s in self.spans if s.name.startswith(prefix) and s.seconds > 0]
        if not spans:
            return None
        seconds = sum(s.seconds for s in spans)
        per_process: dict[tuple[int, str], ProcessCpu] = {}
        for s in spans:
            for p in s.top:
                key = (p.pid, p.name)
                seen = per_process.get(key)
                cpu_s = p.cores * s.seconds + (seen.cores if seen else 0.0)
                per_process[key] = ProcessCpu(p.pid, p.name, cpu_s, p.dashboard)
        top = sorted((ProcessCpu(p.pid, p.name, p.cores / seconds, p.dashboard) for p in per_process.values()),
                     key=lambda p: p.cores, reverse=True)[:TOP_PROCESSES]
        ray = [s for s in spans if s.ray_cores is not None]
        ray_cores = sum(s.ray_cores * s.seconds for s in ray) / sum(s.seconds for s in ray) if ray else None
        return SpanCpu(prefix, seconds, sum(s.cores * s.seconds for s in spans) / seconds, top, ray_cores)
