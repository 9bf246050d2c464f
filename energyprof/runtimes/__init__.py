"""Runtimes: each folder is one way of running the work a profile measures, behind the `Workload` protocol
(energyprof.runtimes.base). Adding a runtime = a folder here and one line in `workload_for`.

The modules here import their runtime (torch, requests, …) only when a workload is made, so importing this package
stays cheap for the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from energyprof.runtimes.base import Workload

if TYPE_CHECKING:  # the parameter table imports energyprof.runtimes.endpoint.url, so not at run time
    from energyprof.spec.params import ProfileParams


def workload_for(params: ProfileParams, loaded: Any = None) -> Workload:
    """The workload these parameters ask for: an endpoint when one is given, else a model loaded here."""
    if params.mode == "endpoint":
        from energyprof.runtimes.endpoint.workload import EndpointWorkload

        return EndpointWorkload(params)
    from energyprof.runtimes.transformers.workload import ModelWorkload

    return ModelWorkload(params, loaded)
