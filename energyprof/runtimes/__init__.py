"""Runtimes: each folder is one way of running the work a profile measures, behind the `Workload` protocol
(energyprof.runtimes.base). Adding a runtime = a folder here and one line in `workload_for`.

The modules here import their runtime (torch, requests, …) only when a workload is made, so importing this package
stays cheap for the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from energyprof.runtimes.base import Workload
from energyprof.runtimes.choice import RuntimeChoice, choose_runtime, loaded_runtime

if TYPE_CHECKING:  # the parameter table imports energyprof.runtimes.endpoint.url, so not at run time
    from energyprof.spec.params import ProfileParams


def workload_for(params: ProfileParams, loaded: Any = None) -> Workload:
    """The workload these parameters ask for: an endpoint when one is given, else a model loaded here by the runtime
    `params.runtime` names (auto: energyprof.runtimes.choice). Never raises for a model that cannot load: the
    workload's `load` says why, so the run is marked failed with that sentence."""
    if params.mode == "endpoint":
        from energyprof.runtimes.endpoint.workload import EndpointWorkload

        return EndpointWorkload(params)
    choice = choose_runtime(params)
    if loaded is not None and loaded_runtime(loaded) != choice.name:
        choice = RuntimeChoice(loaded_runtime(loaded), f"the model was handed over already loaded by "
                                                      f"{loaded_runtime(loaded)}")
    if choice.name == "mlx":
        from energyprof.runtimes.mlx.workload import MlxWorkload

        return MlxWorkload(params, choice, loaded)
    from energyprof.runtimes.transformers.workload import ModelWorkload

    return ModelWorkload(params, loaded, choice)
