"""Store access for the pages: the one Store per database, cached reads, and database errors as one sentence."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from energyprof.power import registry
from energyprof.power.base import SourceStatus
from energyprof.run_views import read_views
from energyprof.store import ACTIVE_STATUSES, Store, StoreError, default_db_path
from energyprof.store.errors import sentence_for
from energyprof.ui.format import md_escape

CACHE_TTL_S = 600
STORE_ERRORS: tuple[type[BaseException], ...] = (StoreError, sqlite3.Error, OSError)
"""What opening, reading or writing the database raises: StoreError (already one sentence, from
energyprof.store.errors), or a raw sqlite3/OS error that escaped its translation."""


def db_path() -> Path:
    """The database in use: $ENERGYPROF_DB, else the user data folder's file."""
    return default_db_path()


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The Store of the database in use (one per path and server process)."""
    return _store(str(db_path()))


def store_error(exc: BaseException, path: Path) -> str:
    """One sentence for a database error: which file, what is wrong, what to do (energyprof.store.errors)."""
    return sentence_for(exc, path)


def writable(path: Path) -> bool:
    """True when this process may write the database file (or create it); checked with the effective ids."""
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Show a database error raised inside as one sentence (st.error) and stop the page or fragment."""
    try:
        yield
    except STORE_ERRORS as exc:
        st.error(md_escape(store_error(exc, path)), icon=":material/database:")
        st.stop()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def _cached_views(db: str, run_id: int, status: str, created_at: float, repeat: int) -> dict[str, Any]:
    store = _store(db)
    run = store.get_run(run_id)
    return read_views(store, run, repeat) if run else {}


def run_views(store: Store, run: dict[str, Any], repeat: int = 0) -> dict[str, Any]:
    """What the run page draws; cached for finished runs, keyed by (db, run, status, created_at, repeat)."""
    if run["status"] in ACTIVE_STATUSES:
        return read_views(store, run, repeat)
    return _cached_views(str(store.path), run["id"], run["status"], run["created_at"], repeat)


@st.cache_data(ttl=60, show_spinner=False)
def source_statuses() -> tuple[list[SourceStatus], str]:
    """Every power source's status and the one `auto` picks (cached a minute: probing runs commands)."""
    statuses = registry.all_statuses()
    return statuses, registry.auto_name(statuses)


def clear_caches() -> None:
    """Forget cached reads and statuses (after writes this page made, and between tests)."""
    st.cache_data.clear()

