"""Secrets never stored nor shown: the one scrubber for error messages, log lines and tracebacks.

A process that reads a secret (the API key named by `--api-key-env`) tells this module with `secret_from_env`
(or `remember`); from then on `redact(text)` replaces it — as typed, stripped, and in the escaped forms `repr()`
and JSON give it — with `[REDACTED]`. Whatever the process knows, a credential after `Bearer ` is redacted too
(so a process that never read the key, e.g. the dashboard, still hides one quoted in a stored message).

`redact` runs on the way into the store (energyprof.store: a run's error, traceback and summary, a sweep's
error), onto the terminal (energyprof.textsafe.terminal_text) and onto the page (pages/run.py); `remember`
also installs a log-record factory and an exception hook, so every log line and every traceback this process
writes afterwards is scrubbed as well.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from typing import Any

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 4
"""Shorter values are not redacted word by word (a key of 1-3 characters would blank ordinary text); the Bearer
rule below still hides them after `Bearer `."""
BEARER = re.compile(r"(?i)(\bbearer\s+)(?=[^\s'\"]*[0-9_\-.])[A-Za-z0-9._~+/=\-]{8,}")
"""`Bearer <credential>` as a header value quotes it (a credential: 8+ token characters, at least one a digit, '-',
'_' or '.', so prose such as "a Bearer token" is left alone)."""

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def forms(secret: str) -> set[str]:
    """The ways a secret shows up in text: as typed, stripped, and escaped by repr() and by JSON."""
    out = set()
    for value in (secret, secret.strip()):
        out.update({value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]})
    return {v for v in out if len(v.strip()) >= MIN_SECRET_CHARS}


def remember(secret: str | None) -> None:
    """From now on redact `secret` (in all its forms) from every text this process scrubs, logs or prints."""
    if not secret:
        return
    with _lock:
        _secrets.update(forms(secret))
    _install()


def secret_from_env(name: str) -> str | None:
    """The value of environment variable `name`, remembered as a secret and stripped of surrounding whitespace (a
    key read from a CRLF file keeps its `\\r`); None when unset or blank."""
    value = os.environ.get(name)
    if value is None:
        return None
    remember(value)
    return value.strip() or None


def redact(text: str) -> str:
    """`text` without any remembered secret and without the credential after `Bearer `."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return BEARER.sub(lambda m: m.group(1) + REDACTED, text)


def redact_value(value: Any) -> Any:
    """`redact` applied to a text, or to every text inside a dict or list (e.g. a summary before it is stored)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def _install() -> None:
    """Scrub every log record (message, traceback, stack) and every uncaught traceback of this process."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # a malformed log call is logging's to report, not ours
            return record
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(scrubbed_record)

    def scrubbed_hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = scrubbed_hook


def forget_all() -> None:
    """Forget every remembered secret (tests)."""
    with _lock:
        _secrets.clear()
