"""The server process: found from the endpoint's local port (or given by pid), and its CPU time and memory.

A local server is busy while it generates, by design: it is the workload, not background. Its CPU seconds and
resident memory (with its child processes: Ollama's runner, LM Studio's workers) are recorded per measured
repeat, and the background monitor leaves these processes out (energyprof.runner.background).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from energyprof.runner.background import process_label
from energyprof.runtimes.endpoint.chunks import EndpointError
from energyprof.runtimes.endpoint.url import is_loopback, local_port, parse


@dataclass(frozen=True)
class ServerUse:
    """CPU seconds (user + system) and resident memory (bytes) of the server and its children at one instant."""

    cpu_s: float
    rss_bytes: int


def listening_pid(port: int) -> int | None:
    """The process listening on this TCP port on this machine, when it can be seen (None otherwise)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):  # macOS: only root sees every socket; look process by process
        return _listening_pid_per_process(port)
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid  # None when the socket belongs to another user
    return None


def _listening_pid_per_process(port: int) -> int | None:
    for proc in psutil.process_iter(["pid"]):
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid
        except (psutil.Error, OSError):
            continue
    return None


class ServerProcess:
    """One server process (and its children, looked up at every reading)."""

    def __init__(self, pid: int) -> None:
        try:
            self.process = psutil.Process(pid)
            self.label = process_label(self.process.name(), self.process.cmdline())
        except psutil.NoSuchProcess:
            raise EndpointError(f"No process has pid {pid}; give the server's pid as --server-pid, or leave it out "
                                "to find the server from the endpoint's port.") from None
        except psutil.AccessDenied:
            raise EndpointError(f"The process {pid} cannot be read by this user; leave --server-pid out or run "
                                "energyprof as the server's user.") from None
        self.pid = pid

    def pids(self) -> set[int]:
        """The server and its children, now."""
        try:
            return {self.pid, *(c.pid for c in self.process.children(recursive=True))}
        except psutil.Error:
            return {self.pid}

    def use(self) -> ServerUse | None:
        """CPU seconds and resident memory of the server and its children; None when the server is gone."""
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return None
        cpu, rss = 0.0, 0
        for proc in processes:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return ServerUse(cpu, rss)


def find_server(endpoint: str, pid: int | None) -> tuple[ServerProcess | None, str | None]:
    """The server process to record, or None with the reason (a sentence fragment) why not."""
    if pid is not None:
        return ServerProcess(pid), None
    if not is_loopback(endpoint):
        return None, f"the endpoint's host {parse(endpoint).hostname} is not this machine's loopback; give " \
                     "--server-pid when the server runs here"
    port = local_port(endpoint)
    found = listening_pid(port)
    if found is None:
        return None, f"no process visible to this user listens on port {port}; give --server-pid"
    if found == os.getpid():
        return None, "the server runs inside the profiling process itself, so its CPU cannot be told apart"
    try:
        return ServerProcess(found), None
    except EndpointError as exc:
        return None, str(exc).rstrip(".")
