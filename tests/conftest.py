"""Shared fixtures: a fresh database per test and the path to the real powermetrics recordings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The zeus_apple_silicon stand-in (tests/stand_ins), importable during this test only, FAKE_IOREPORT_* unset."""
    from ioreport_stand_in import STAND_INS

    for name in list(os.environ):
        if name.startswith("FAKE_IOREPORT_"):
            monkeypatch.delenv(name)
    sys.modules.pop("zeus_apple_silicon", None)
    monkeypatch.syspath_prepend(str(STAND_INS))
    import zeus_apple_silicon

    yield zeus_apple_silicon
    sys.modules.pop("zeus_apple_silicon", None)


@pytest.fixture(scope="session")
def mlx_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders for the MLX runtime tests (tests/mlx_models.py): `q4`, the tiny built-in MLX-quantised to 4
    bits; `hf`, the tiny transformers built-in saved with save_pretrained."""
    from mlx_models import save_hf_llama, save_quantised_tiny

    root = tmp_path_factory.mktemp("mlx-models")
    return {"q4": save_quantised_tiny(root / "tiny-4bit"), "hf": save_hf_llama(root / "tiny-hf")}


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A real profile run with a hostile model name and prompt (tests/sharing_runs.py), in its own database, made
    once for the tests that read it (flow, report)."""
    from sharing_runs import hostile_profile

    db = tmp_path_factory.mktemp("hostile") / "energyprof.sqlite3"
    return db, hostile_profile(db)
