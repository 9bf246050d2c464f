"""The Store's errors: every sqlite3 or OS error about the database file becomes one sentence for people.

    from energyprof.store import StoreError
    try:
        store = Store(path)
    except StoreError as exc:
        show(str(exc))          # which file, what is wrong, what to do

`StoreError` is raised by opening a Store (folder, connection, migrations) and by any read or write that
fails because of the file (damaged, read-only, locked, disk full). Constraint and programming errors are
not translated: they are bugs or have their own exception (JobAlreadyRunning).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from energyprof.errors import EnergyprofError, user_message

BUSY_WAIT_S = 30
"""How long a write waits for another writer (the connections' busy timeout), quoted in the sentence."""


class StoreError(EnergyprofError):
    """A problem with the database file, as one sentence for people (which file, what is wrong, what to do)."""

    def __init__(self, sentence: str, path: Path | None = None) -> None:
        super().__init__(sentence)
        self.path = path


class RunNotActive(StoreError):
    """A write for a run that is no longer queued or running (it was marked failed, cancelled or done meanwhile);
    nothing was written. `status` is the run's final status (None when the run was deleted)."""

    def __init__(self, sentence: str, run_id: int, status: str | None) -> None:
        super().__init__(sentence)
        self.run_id, self.status = run_id, status


def not_active_sentence(run_id: int, status: str | None) -> str:
    """Why a write for this run was refused (status: its final status, None when deleted)."""
    if status is None:
        return (f"Run {run_id} was deleted while this process was still recording it; what it did afterwards is "
                "not recorded.")
    return (f"Run {run_id} was marked {status} while this process was still working on it (it had stopped "
            "responding, or ran where the process that marked it could not see it); what it did afterwards is "
            "not recorded, so start a new run.")


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Run the block; a sqlite3 or OS error about the database file leaves it as a StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError,
            sqlite3.NotSupportedError):
        raise
    except sqlite3.Error as exc:
        raise StoreError(sqlite_sentence(exc, path), path) from exc
    except OSError as exc:
        raise StoreError(os_sentence(exc, path), path) from exc


ELSEWHERE = "--db (or $ENERGYPROF_DB)"
"""How to use another database file, named in every sentence that suggests it."""


def sentence_for(exc: BaseException, path: Path) -> str:
    """The one sentence for an error raised while using the database `path`: a StoreError's own, a raw sqlite3 or OS
    error that escaped translation as `translated` would have said it, anything else by energyprof.errors."""
    if isinstance(exc, StoreError):
        return str(exc)
    if isinstance(exc, sqlite3.Error):
        return sqlite_sentence(exc, path)
    if isinstance(exc, OSError) and not isinstance(exc, EnergyprofError):
        return os_sentence(exc, path)
    return user_message(exc, "Using the database")


def read_only_sentence(path: Path) -> str:
    """What a read-only database still allows (looking) and how to make it writable."""
    return (f"The database {path} is read-only: its runs can be looked at, but nothing can be recorded, cancelled "
            "or deleted; make the file and its folder writable (chmod u+w), or set ENERGYPROF_DB to another file.")


ERROR_NAMES_BY_TEXT = (
    ("file is not a database", "SQLITE_NOTADB"),
    ("malformed", "SQLITE_CORRUPT"),
    ("readonly", "SQLITE_READONLY"),
    ("read-only", "SQLITE_READONLY"),
    ("unable to open", "SQLITE_CANTOPEN"),
    ("disk is full", "SQLITE_FULL"),
    ("is locked", "SQLITE_BUSY"),
    ("disk i/o error", "SQLITE_IOERR"),
)
"""SQLite's result name from its message, for an error raised without one (a driver or Python older than 3.11)."""


def error_name(exc: sqlite3.Error) -> str:
    """SQLite's result name of the error (e.g. SQLITE_BUSY), from its message when the error does not carry it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name
    text = str(exc).lower()
    return next((known for part, known in ERROR_NAMES_BY_TEXT if part in text), "")


def sqlite_sentence(exc: sqlite3.Error, path: Path) -> str:
    """One sentence for an SQLite error on the database `path`."""
    name = error_name(exc)
    what = str(exc)
    folder = path.parent
    if name == "SQLITE_NOTADB":
        return f"{path} is not an energyprof database ({what}); point {ELSEWHERE} at another file or move it away."
    if name.startswith("SQLITE_CORRUPT"):
        return (f"{path} is damaged ({what}); move it away (or restore it from a backup) and point {ELSEWHERE} at "
                "another file.")
    if name == "SQLITE_READONLY_DIRECTORY" or (name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))
                                               and folder.is_dir() and not os.access(folder, os.W_OK)):
        return (f"{path} cannot be used because its folder {folder} is read-only (SQLite keeps its journal "
                f"files beside the database); make the folder writable or point {ELSEWHERE} at a file in "
                "another folder.")
    if name.startswith("SQLITE_READONLY"):
        return f"{path} is read-only ({what}); make it writable (chmod u+w) or point {ELSEWHERE} at another file."
    if name.startswith("SQLITE_CANTOPEN"):
        return (f"{path} cannot be opened ({what}); check that its folder exists and that you may read and write "
                f"there, or point {ELSEWHERE} at another file.")
    if name == "SQLITE_FULL":
        return f"{path} cannot grow because the disk is full ({what}); free some space and run again."
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"{path} is locked by another program ({what}, after waiting up to {BUSY_WAIT_S} s); wait for it "
                "to finish or close it, then run again.")
    if name.startswith("SQLITE_IOERR"):
        return f"{path} could not be read or written ({what}); check the disk, or point {ELSEWHERE} at another file."
    if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")):
        return f"{path} may not be used ({what}); check its permissions, or point {ELSEWHERE} at another file."
    return (f"{path} could not be used as an energyprof database ({what}); point {ELSEWHERE} at another file or move "
            "it away.")


def os_sentence(exc: OSError, path: Path) -> str:
    """One sentence for an OS error while preparing the database `path` (its folder)."""
    reason = exc.strerror or str(exc)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return (f"{path} cannot be created: {blocker} is a file, not a folder; point {ELSEWHERE} at a file inside "
                "a folder.")
    if isinstance(exc, PermissionError):
        return (f"{path} cannot be created: no permission to create its folder {path.parent} ({reason}); point "
                f"{ELSEWHERE} at a file in a folder you can write.")
    return f"{path} cannot be created or opened ({reason}); point {ELSEWHERE} at another file."


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of path, when it is not a folder."""
    for parent in path.parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else parent
    return None
