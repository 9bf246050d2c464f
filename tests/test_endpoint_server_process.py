"""The server process of an endpoint run: found from the endpoint's port, its CPU time and memory read with its
children, and left out of the background comparison, so a busy local server does not by itself make a run
*disturbed*. The server here is a busy process started detached (not a descendant of the tests, like a server
a user starts), stopped after the module."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from endpoint_servers import free_port, start_detached, stop_detached

from energyprof.runner.background import BackgroundMonitor
from energyprof.runner.job import profile_foreground
from energyprof.runtimes.endpoint.chunks import EndpointError
from energyprof.runtimes.endpoint.server import ServerProcess, find_server, listening_pid
from energyprof.spec.params import ProfileParams
from energyprof.store import Store

BUSY_SERVER = """
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
end = time.monotonic() + 120
while time.monotonic() < end:
    sum(i * i for i in range(10_000))
"""


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(pid, port) of a detached process that listens on a port and keeps one core busy."""
    port = free_port()
    pid = start_detached([sys.executable, "-c", BUSY_SERVER, str(port)], tmp_path_factory.mktemp("busy") / "log",
                         lifetime_s=180)
    try:
        deadline = time.monotonic() + 30
        while listening_pid(port) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        yield pid, port
    finally:
        stop_detached(pid)


def test_the_server_is_found_from_the_endpoints_port(busy_server: tuple[int, int]) -> None:
    pid, port = busy_server
    assert listening_pid(port) == pid
    server, note = find_server(f"http://localhost:{port}/v1", None)
    assert note is None and server.pid == pid and server.label.startswith("python")
    assert server.pids() == {pid}


def test_its_cpu_time_grows_and_its_memory_is_read(busy_server: tuple[int, int]) -> None:
    server = ServerProcess(busy_server[0])
    before = server.use()
    time.sleep(0.5)
    after = server.use()
    assert after.cpu_s - before.cpu_s > 0.1 and after.rss_bytes > 1_000_000


def test_the_server_is_left_out_of_the_background(busy_server: tuple[int, int]) -> None:
    pid, _ = busy_server
    seen, excluded = BackgroundMonitor(), BackgroundMonitor(lambda: {pid})
    with seen.span("repeat 0"), excluded.span("repeat 0"):
        time.sleep(0.6)
    busy = next((p for p in seen.mean("repeat").top if p.pid == pid), None)
    assert busy is not None and busy.cores > 0.2  # counted as background when nobody says it is the server
    assert pid not in {p.pid for p in excluded.mean("repeat").top}
    assert excluded.mean("repeat").cores < seen.mean("repeat").cores - 0.2


def test_servers_that_cannot_be_recorded_say_why(busy_server: tuple[int, int]) -> None:
    server, note = find_server("http://192.0.2.1:11434/v1", None)
    assert server is None and "not this machine's loopback; give --server-pid" in note
    server, note = find_server(f"http://127.0.0.1:{free_port()}/v1", None)
    assert server is None and "no process visible to this user listens on port" in note
    assert find_server("http://192.0.2.1:11434/v1", busy_server[0])[0].pid == busy_server[0]


def test_a_server_pid_that_does_not_exist_fails_the_run(store: Store, tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="No process has pid"):
        ServerProcess(2**22 + 12345)
    params = ProfileParams(endpoint=f"http://127.0.0.1:{free_port()}/v1", model="m", source="estimate",
                           baseline_s=0, warmup=0, repeats=1, server_pid=2**22 + 12345)
    summary = profile_foreground(store, params)
    assert summary.status == "failed" and summary.error.startswith("No process has pid 4206649;")
