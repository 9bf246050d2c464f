"""One error root: every error class energyprof defines derives from EnergyprofError (or is marked as control flow),
and every exception, ours or not, becomes one sentence for people."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3
from pathlib import Path

import pytest

import energyprof
from energyprof.errors import ControlFlow, EnergyprofError, user_message
from energyprof.store.errors import sentence_for

MULTILINE = "the first line of what went wrong\nTraceback (most recent call last):\n  File \"x.py\", line 1"


def energyprof_modules() -> list[str]:
    """Every module of the package (the runtimes' too: their imports are installed here)."""
    return [info.name for info in pkgutil.walk_packages(energyprof.__path__, "energyprof.")
            if not info.name.endswith("__main__")]


def exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in energyprof, found by importing every module."""
    found: dict[str, type[BaseException]] = {}
    for name in energyprof_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                found[f"{name}.{cls.__qualname__}"] = cls
    return [found[key] for key in sorted(found)]


CLASSES = exception_classes()


def one_sentence(text: str) -> None:
    assert text and "\n" not in text and "Traceback" not in text, text
    assert text.endswith("."), text
    assert not text[0].islower(), text


def test_the_walk_finds_the_known_errors() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"StoreError", "PowerSourceError", "JobError", "ModelLoadError", "EndpointError", "SweepError",
            "JobLaunchError", "JobAlreadyRunning", "JobCancelled", "Terminated", "_CaptureDone"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_error_class_derives_from_the_root_or_is_control_flow(cls: type[BaseException]) -> None:
    if issubclass(cls, ControlFlow):
        assert not issubclass(cls, EnergyprofError)
        assert (cls.__doc__ or "").startswith("Control flow, not an error"), cls.__doc__
        return
    assert issubclass(cls, EnergyprofError), f"{cls.__module__}.{cls.__qualname__} does not derive from it"
    error = cls.__new__(cls)
    Exception.__init__(error, MULTILINE)
    said = user_message(error)
    one_sentence(said)
    assert said == error.user_message == "The first line of what went wrong."
    empty = cls.__new__(cls)
    Exception.__init__(empty)
    one_sentence(user_message(empty))


@pytest.mark.parametrize("exc", [
    RuntimeError(MULTILINE), KeyError("missing"), ValueError(MULTILINE), ValueError(), OSError(28, "No space left"),
    MemoryError(), RuntimeError("CUDA out of memory.\ntried to allocate"), ArithmeticError(""),
    sqlite3.OperationalError("database or disk is full"),
], ids=repr)
def test_any_exception_becomes_one_sentence(exc: BaseException) -> None:
    one_sentence(user_message(exc))
    one_sentence(user_message(exc, "Attributing the energy", db_path=Path("/x/e.sqlite3"), kept="the rest is kept"))


def test_the_sentences_people_rely_on() -> None:
    said = user_message(RuntimeError("kernel exploded"))
    assert said == "The profiling job failed with RuntimeError: kernel exploded."
    assert user_message(ArithmeticError("bad windows."), "Attributing the energy",
                        kept="the steps and power samples are kept") == (
        "Attributing the energy failed with ArithmeticError: bad windows; the steps and power samples are kept.")
    assert user_message(sqlite3.OperationalError("database or disk is full"), db_path=Path("/d/e.sqlite3")) == (
        "The disk holding the database /d/e.sqlite3 is full; free some space and run the profile again (what was "
        "recorded before is kept).")


@pytest.mark.parametrize(("exc", "words"), [
    (sqlite3.OperationalError("database is locked"), "is locked by another program"),
    (sqlite3.DatabaseError("file is not a database"), "is not an energyprof database"),
    (sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
    (sqlite3.OperationalError("database or disk is full"), "disk is full"),
    (sqlite3.OperationalError("something new"), "could not be used as an energyprof database"),
], ids=repr)
def test_database_errors_are_said_in_one_place(tmp_path: Path, exc: sqlite3.Error, words: str) -> None:
    path = tmp_path / "e.sqlite3"
    said = sentence_for(exc, path)
    one_sentence(said)
    assert str(path) in said and words in said
