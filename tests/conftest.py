"""Shared fixtures: a fresh database per test and the path to the real powermetrics recordings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database file, also exported as $ENERGYPROF_DB for subprocesses and pages."""
    path = tmp_path / "energyprof.sqlite3"
    monkeypatch.setenv("ENERGYPROF_DB", str(path))
    return path


@pytest.fixture
def store(db_path: Path):
    from energyprof.store import Store

    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    from recordings import FIXTURES

    assert FIXTURES.is_dir(), f"the recordings are missing: {FIXTURES}"
    return FIXTURES


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
