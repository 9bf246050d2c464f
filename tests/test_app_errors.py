"""Every page faced with a database it cannot use (damaged, under a file, read-only): one sentence naming the file,
what is wrong and what to do; never an exception. User text (model names, errors, source reasons, labels) stays
text: nothing in it becomes an image, a link or HTML."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from seed import open_page, seed_run, texts

from energyprof import ui
from energyprof.runner import jobs
from energyprof.store import Store

PAGES = [page.path for page in ui.PAGES]
HOSTILE = "![t](http://hostile.invalid/x.png) <img src=http://hostile.invalid/y.png> [link](http://hostile.invalid)"


def one_sentence(at: Any, *words: str) -> str:
    assert not at.exception, [e.value for e in at.exception]
    errors = texts(at, "error")
    assert len(errors) == 1, errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


@pytest.mark.parametrize("page", PAGES)
def test_damaged_database_is_one_sentence_on_every_page(db_path: Path, page: str) -> None:
    db_path.write_bytes(b"this is not an SQLite file " * 200)
    at = open_page(page)
    sentence = one_sentence(at, str(db_path), "is not an energyprof database", "ENERGYPROF_DB")
    assert "file is not a database" in sentence
    assert db_path.read_bytes().startswith(b"this is not an SQLite file")  # nothing overwritten


@pytest.mark.parametrize("page", PAGES)
def test_database_under_a_file_is_one_sentence_on_every_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             page: str) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("ENERGYPROF_DB", str(blocker / "energyprof.sqlite3"))
    at = open_page(page)
    one_sentence(at, str(blocker / "energyprof.sqlite3"), f"{blocker} is a file, not a folder", "ENERGYPROF_DB")


_CAP_DAC_OVERRIDE = 1
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@contextlib.contextmanager
def file_permissions_apply() -> Iterator[None]:
    """Make file permissions bind this thread and the threads it starts (AppTest's script thread), even as root.

    Root ignores a file's mode (CAP_DAC_OVERRIDE), and CI runs as root; Linux capabilities are per thread, so
    the effective CAP_DAC_OVERRIDE is dropped here for the block and restored after."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.fail(f"capget failed: {os.strerror(ctypes.get_errno())}")
    saved = data[0].effective
    data[0].effective = saved & ~(1 << _CAP_DAC_OVERRIDE)
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.fail(f"capset failed: {os.strerror(ctypes.get_errno())}")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@pytest.fixture
def read_only(db_path: Path) -> Iterator[Path]:
    """The database file made read-only (chmod 444), with file permissions binding this test even as root."""
    with file_permissions_apply():
        db_path.chmod(0o444)
        try:
            with pytest.raises(PermissionError):
                db_path.open("r+b")
            yield db_path
        finally:
            db_path.chmod(0o644)


def test_read_only_database_is_browsable_and_said_once_on_every_page(store: Store, read_only: Path) -> None:
    for page in PAGES:
        at = open_page(page, {"run": "1"} if page == "pages/run.py" else None)
        assert not at.exception, (page, [e.value for e in at.exception])
        warnings = [w for w in texts(at, "warning") if "read-only" in w]
        assert warnings == [f"The database {read_only} is read-only: its runs can be looked at, but nothing can be "
                            "recorded, cancelled or deleted; make the file and its folder writable (chmod u+w), or "
                            "set ENERGYPROF_DB to another file."], (page, warnings)


def test_demo_on_a_read_only_database_is_one_sentence(store: Store, read_only: Path) -> None:
    at = open_page()
    at.button(key="demo").click().run()
    one_sentence(at, str(read_only), "is read-only")
    assert store.list_runs().empty


def test_delete_on_a_read_only_database_is_one_sentence(db_path: Path) -> None:
    store = Store(db_path)
    run_id = seed_run(store, tokens=4)
    store.close()
    with file_permissions_apply():
        db_path.chmod(0o444)
        try:
            at = open_page()
            at.button(key="delete").click().run()
            at.button(key="delete_yes").click().run()
            one_sentence(at, str(db_path), "is read-only")
        finally:
            db_path.chmod(0o644)
    with contextlib.closing(sqlite3.connect(db_path)) as conn:  # a plain read: this process shares the file's
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE id = ?", (run_id,)).fetchone() == (1,)  # read-only shm


def test_demo_reports_a_database_error_raised_while_launching(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(s: Store, params: dict[str, Any]) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(jobs, "launch_job", locked)
    at = open_page()
    at.button(key="demo").click().run()
    one_sentence(at, str(store.path), "is locked by another program")


# -- user text stays text ------------------------------------------------------------------------------------
_LIVE = re.compile(r"(?<!\\)!\[|(?<!\\)<\s*img|(?<!\\)\]\(|https?\\?:\\?/|(?<!\w)www\\?\.|@\w", re.IGNORECASE)
"""A Markdown image or link or an <img> tag not neutralised by a backslash escape, or a bare URL or address that
GFM would make a link (it finds those after the escapes are gone)."""


def markdown_bodies(at: Any) -> list[str]:
    """Every Markdown string the page sends: markdown, captions, titles, alerts, metric and link labels."""
    bodies = [str(e.value) for kind in ("markdown", "caption", "title", "header", "subheader", "error", "warning",
                                        "info", "success") for e in getattr(at, kind)]
    bodies += [m.label for m in at.metric] + [str(m.value) for m in at.metric]
    bodies += [link.proto.label for link in at.get("page_link")]
    return bodies


def assert_inert(at: Any) -> None:
    assert not at.exception, [e.value for e in at.exception]
    live = [b for b in markdown_bodies(at) if _LIVE.search(b)]
    assert not live, live


def test_hostile_run_text_is_shown_as_text(store: Store) -> None:
    run_id = seed_run(store, tokens=6, layer_calls=30, status="failed", model=HOSTILE, device=HOSTILE,
                      token_texts=[HOSTILE] * 6)
    summary = store.get_run(run_id)["summary"]
    store.update_run(run_id, error=HOSTILE, source=HOSTILE, summary={**summary, "warnings": [HOSTILE]})
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert_inert(at)
    assert any(t == f"Run #{run_id} · {HOSTILE}" for t in texts(at, "title"))
    assert any(t == f"This run failed: {HOSTILE}" for t in texts(at, "error"))
    assert HOSTILE in texts(at, "warning")
    body = " ".join(h.proto.body for h in at.html)
    assert "<img" not in body and "![t](" in body  # the token text: HTML-escaped, and st.html renders no Markdown
    assert_inert(open_page())
    assert_inert(open_page("pages/compare.py", {"runs": f"{run_id},{seed_run(store, tokens=4)}"}))


def test_hostile_query_parameters_and_live_phase_are_shown_as_text(store: Store) -> None:
    run_id = seed_run(store, tokens=6, status="running", model=HOSTILE)
    store.update_run(run_id, phase=HOSTILE)
    at = open_page("pages/run.py", {"run": str(run_id)})
    assert_inert(at)
    assert f"phase **{HOSTILE}**" in " ".join(texts(at, "markdown"))
    assert_inert(open_page("pages/compare.py", {"runs": f"{run_id},{HOSTILE}"}))
    assert_inert(open_page("pages/run.py", {"run": HOSTILE}))
    assert_inert(open_page("pages/new.py"))


def test_hostile_source_reason_is_shown_as_text(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from energyprof.power import registry
    from energyprof.power.base import SourceStatus

    real = registry.all_statuses

    def hostile() -> list[SourceStatus]:
        statuses = real()
        return [dataclasses.replace(statuses[0], reason=HOSTILE), *statuses[1:]]

    monkeypatch.setattr(registry, "all_statuses", hostile)
    at = open_page("pages/sources.py")
    assert_inert(at)
    assert any(HOSTILE in t for t in texts(at, "markdown"))


def test_md_escape_leaves_nothing_live() -> None:
    for text in (HOSTILE, ":red[x] :material/bolt: $x^2$ **b** _i_ `c` # h\n- item\n1. one | a | b |",
                 "\\![t](u)", "&lt;img src=x&gt;", "www.hostile.invalid"):
        escaped = ui.md_escape(text)
        assert "\n" not in escaped and not _LIVE.search(escaped)
        assert re.sub(r"\\(.)", r"\1", escaped).replace("\u2060", "") == " ".join(text.splitlines())
