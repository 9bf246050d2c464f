"""The Store: the one class that owns energyprof's SQLite file. Nothing outside this package runs SQL.

Any problem with the file (not a database, damaged, read-only, in a read-only folder or under a file, locked,
disk full) is raised as `StoreError`, whose text is one sentence for people: which file, what is wrong, what
to do. Show it as text and stop; `RunNotActive` (a StoreError) is a write for a run that was marked failed,
cancelled or done meanwhile."""

from __future__ import annotations

from energyprof.store.bundle import BundleError, BundleMixin, ImportResult, RayNode
from energyprof.store.db import ACTIVE_STATUSES, FINAL_STATUSES, StoreCore, default_db_path
from energyprof.store.errors import RunNotActive, StoreError
from energyprof.store.power import PowerMixin
from energyprof.store.profile import ProfileMixin
from energyprof.store.replay import ReplayMixin
from energyprof.store.runs import JobAlreadyRunning, RunsMixin
from energyprof.store.sweeps import SweepsMixin


class Store(RunsMixin, PowerMixin, ProfileMixin, ReplayMixin, SweepsMixin, BundleMixin, StoreCore):
    """energyprof's database: runs, power samples, (by later migrations) profiling results, layer replays, sweeps and
    the origin of imported runs (bundles)."""


__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "BundleError", "ImportResult", "JobAlreadyRunning", "RayNode",
           "RunNotActive", "Store", "StoreError", "default_db_path"]
