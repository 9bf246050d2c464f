"""Where a sweep's points run when they run on Ray: the cluster's address and whether every point runs on every node.

Torch-free and Ray-free (the dashboard's form and the CLI check an address with it); energyprof.runner.ray_cluster
connects. Addresses: `auto` (join the cluster this machine is part of, `ray start` ran here), `local` (start a Ray
instance on this machine, for trying it), `ray://HOST:PORT` (a cluster's Ray Client server, port 10001 by default)
or `HOST:PORT` (a cluster's GCS address, what `ray start --head` prints, from a machine in the cluster's network).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RAY_ADDRESS_HELP = ("auto (the cluster this machine joined with `ray start`), local (a Ray instance started here, to "
                    "try it), ray://HOST:PORT (a cluster's Ray Client server) or HOST:PORT (its GCS address)")
RAY_RESOURCE = "energyprof"
"""The custom resource a node offers to take profiling tasks; each task asks for one unit (one task per machine)."""
JOIN_COMMAND = f"ray start --address HEAD:6379 --resources '{{\"{RAY_RESOURCE}\": 1}}'"
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(?P<port>[0-9]{1,5})")


def ray_address_error(text: str) -> str | None:
    """One sentence when `text` is not a Ray address energyprof accepts (None when it is)."""
    address = (text or "").strip()
    if address in ("auto", "local"):
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    match = _HOST_PORT.fullmatch(rest)
    if match and 0 < int(match["port"]) < 65536:
        return None
    return (f"{address[:80]!r} is not a Ray address; give {RAY_ADDRESS_HELP}.")


def host_port(address: str) -> tuple[str, int] | None:
    """The host and port a `ray://HOST:PORT` or `HOST:PORT` address names (None for auto and local)."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    match = _HOST_PORT.fullmatch(rest)
    if match is None:
        return None
    return match["host"].strip("[]"), int(match["port"])


@dataclass(frozen=True)
class RaySettings:
    """A sweep on Ray: where (`address`) and whether every point runs on every node offering energyprof
    (`replicate`: one run per point per machine, the cross-machine comparison) or once on any of them."""

    address: str
    replicate: bool = False

    def errors(self) -> list[str]:
        problem = ray_address_error(self.address)
        return [problem] if problem else []

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "replicate": self.replicate}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RaySettings | None:
        """Settings stored in a sweep row (None: the sweep runs its points on this machine)."""
        if not isinstance(data, dict) or not isinstance(data.get("address"), str):
            return None
        return cls(data["address"], bool(data.get("replicate")))
