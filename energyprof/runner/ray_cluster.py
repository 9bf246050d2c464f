"""A connection to a Ray cluster for a sweep: Ray imported only here and only when asked for (it is an extra:
`pip install -e ".[ray]"`), the address checked before anything starts, the nodes that offer energyprof.

Nothing that the CLI or the dashboard imports eagerly imports this module: `energyprof sweep --ray` and the
`sweep-job` of a Ray sweep import it when they need it.
"""

from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

from energyprof.errors import EnergyprofError, first_line
from energyprof.spec.ray_cluster import JOIN_COMMAND, RAY_RESOURCE, host_port

log = logging.getLogger(__name__)

REACH_TIMEOUT_S = 3.0
INSTALL_HINT = 'install it with `pip install -e ".[ray]"` (or `pip install ray==2.60.0`)'


class RayUnavailable(EnergyprofError):
    """Ray is not installed, or the cluster cannot be reached or offers no node for energyprof; one sentence."""


@dataclass(frozen=True)
class RayNodeInfo:
    """A node of the cluster that offers the energyprof resource."""

    node_id: str
    name: str
    ip: str

    def describe(self) -> str:
        """`node-b (10.0.0.7)`, or the address alone when the node is named by it (Ray's default)."""
        return self.ip if self.name in ("", self.ip) else f"{self.name} ({self.ip})"


def import_ray() -> Any:
    """The ray module; RayUnavailable with how to install it when it is not installed."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"Ray is not installed here, so --ray cannot be used; {INSTALL_HINT}.") from None
    return ray


class RayCluster:
    """A connected cluster (the driver's side)."""

    def __init__(self, ray: Any, address: str, *, owned: bool) -> None:
        self.ray, self.address, self.owned = ray, address, owned

    def nodes(self) -> list[RayNodeInfo]:
        """The live nodes that offer the energyprof resource, by name."""
        found = []
        for node in self.ray.nodes():
            if node.get("Alive") and (node.get("Resources") or {}).get(RAY_RESOURCE, 0) >= 1:
                ip = str(node.get("NodeManagerAddress") or "")
                found.append(RayNodeInfo(str(node["NodeID"]), str(node.get("NodeName") or ip), ip))
        return sorted(found, key=lambda n: (n.name, n.node_id))

    def node(self, node_id: str | None) -> RayNodeInfo | None:
        """A node by id, alive or not (None when the cluster does not know it)."""
        for node in self.ray.nodes():
            if node.get("NodeID") == node_id:
                ip = str(node.get("NodeManagerAddress") or "")
                return RayNodeInfo(str(node_id), str(node.get("NodeName") or ip), ip)
        return None


def _check_reachable(address: str) -> None:
    """RayUnavailable with one sentence when nothing listens at a HOST:PORT address (a quick TCP connect)."""
    target = host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayUnavailable(f"Cannot reach the Ray cluster at {address} ({reason}); start it there with `ray start "
                             "--head` (and `--ray-client-server-port` for ray://), or check the address.") from None


def _init(ray: Any, address: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address == "local":
        ray.init(address="local", num_cpus=os.cpu_count() or 1, resources={RAY_RESOURCE: 1},
                 include_dashboard=False, **quiet)
    else:
        ray.init(address=address, **quiet)


@contextmanager
def ray_cluster(address: str) -> Iterator[RayCluster]:
    """Connect (or, for `local`, start a Ray instance here) for the block, then disconnect (and stop it).

    RayUnavailable with one sentence when Ray is missing, the cluster cannot be reached, or no node offers the
    energyprof resource: all before anything runs. A process already connected to Ray keeps its connection. While
    connected, sys.stdout is a stream into this module's log: Ray prints its own notices there (print results after
    the block)."""
    ray = import_ray()
    owned = not ray.is_initialized()
    if not owned:
        yield _usable(RayCluster(ray, address, owned=False))
        return
    _check_reachable(address)
    log.info("connecting to Ray at %s", address)
    with redirect_stdout(_LogStream()):  # Ray prints its notices (a worker that died, …) on stdout: keep them apart
        try:
            _init(ray, address)
        except Exception as exc:
            detail = first_line(str(exc)) or type(exc).__name__
            raise RayUnavailable(f"Cannot connect to the Ray cluster at {address} ({detail.rstrip('.')}); start it "
                                 "with `ray start --head`, or check the address.") from None
        try:
            yield _usable(RayCluster(ray, address, owned=True))
        finally:
            ray.shutdown()


def _usable(cluster: RayCluster) -> RayCluster:
    if not cluster.nodes():
        raise RayUnavailable(f"No node of the Ray cluster at {cluster.address} offers the `{RAY_RESOURCE}` resource; "
                             f"on each machine that should profile, run `{JOIN_COMMAND}`.")
    return cluster


class _LogStream(io.TextIOBase):
    """A stdout for Ray's own messages while connected: each line goes to this module's log (INFO)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.info("ray: %s", line.rstrip())
        return len(text)
