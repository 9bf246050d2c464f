"""The Store: the one class that owns energyprof's SQLite file. Nothing outside this package runs SQL."""

from __future__ import annotations

from energyprof.store.db import StoreCore, default_db_path
from energyprof.store.power import PowerMixin
from energyprof.store.profile import ProfileMixin
from energyprof.store.runs import ACTIVE_STATUSES, FINAL_STATUSES, JobAlreadyRunning, RunsMixin


class Store(RunsMixin, PowerMixin, ProfileMixin, StoreCore):
    """energyprof's database: runs, power samples, and (by later migrations) profiling results."""


__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "JobAlreadyRunning", "Store", "default_db_path"]
