"""Issue 17, defect 1: an API key never reaches the database, the job log, the terminal or the run page.

A key planted in the environment the way the issue found it (read from a CRLF file, so it ends in `\\r`) is used
against real HTTP servers on 127.0.0.1 that fail in every way an endpoint can — and that quote the key back in
their error bodies and streams — and after each failure the whole database (the file, its -wal and -shm) and the
job logs are searched for it, byte by byte."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from endpoint_servers import FAKE_MODEL, FakeEndpoint, Handler, chunk, event, free_port, token_stream
from profile_helpers import REPO, wait_for
from seed import open_page, texts

from energyprof import redact
from energyprof.runner import jobs
from energyprof.runner.job import profile_foreground
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary

KEY = "sk-live-REALKEY123"
PLANTED = KEY + "\r"
MARK = b"REALKEY123"
ENV = "ENERGYPROF_HOSTILE_KEY"


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENV, PLANTED)
    yield
    redact.forget_all()


def quoting_the_key(status: int) -> Any:
    """A server answering `status` with a body that quotes the Authorization header it received."""
    def respond(handler: Handler, _: dict[str, Any]) -> None:
        handler.send_json(status, {"error": {"message": f"bad credentials: {handler.headers['Authorization']}"}})
    return respond


def stream_quoting_the_key(kind: str) -> Any:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        if body["max_tokens"] == 1:
            handler.send_pieces(token_stream(1))
            return
        said = handler.headers["Authorization"]
        pieces = {"error": [event(chunk("a")), event({"error": {"message": f"worker died holding {said}"}})],
                  "garbage": [event(chunk("a")), f"data: <html>{said}</html>\n\n".encode()],
                  "absurd": [event(chunk("a")), event(chunk("b")),
                             event(chunk(usage={"prompt_tokens": 10**12, "completion_tokens": 10**9})),
                             b"data: [DONE]\n\n"],
                  "endless": [event(chunk("tok ")) for _ in range(200)]}[kind]
        handler.send_pieces(pieces)
    return respond


def files_of(store: Store) -> list[Path]:
    """The database file, its -wal and -shm, and every job log."""
    paths = [store.path, *store.path.parent.glob(store.path.name + "-*")]
    return [*paths, *(store.path.parent / jobs.LOG_DIR_NAME).glob("*")]


def assert_nowhere(store: Store) -> None:
    for path in files_of(store):
        assert MARK not in path.read_bytes(), path


def params(url: str, **overrides: Any) -> ProfileParams:
    values = {"endpoint": url, "model": FAKE_MODEL, "prompt": "Hello", "max_new_tokens": 4, "source": "estimate",
              "interval_ms": 20, "repeats": 1, "warmup": 0, "baseline_s": 0.1, "timeout_s": 5.0, "api_key_env": ENV}
    return ProfileParams(**{**values, **overrides})


@pytest.mark.parametrize("mode", ["http 401", "http 500", "error event", "garbage event", "absurd usage",
                                  "endless stream", "refused", "key with a line break inside"])
def test_the_key_is_in_no_stored_byte_after_any_endpoint_failure(store: Store, mode: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    responders = {"http 401": quoting_the_key(401), "http 500": quoting_the_key(500),
                  "error event": stream_quoting_the_key("error"), "garbage event": stream_quoting_the_key("garbage"),
                  "absurd usage": stream_quoting_the_key("absurd"), "endless stream": stream_quoting_the_key("endless"),
                  "key with a line break inside": quoting_the_key(401)}
    if mode == "key with a line break inside":
        monkeypatch.setenv(ENV, "sk-live-REAL\nKEY123\r\n")
    if mode == "refused":
        summary = profile_foreground(store, params(f"http://127.0.0.1:{free_port()}/v1"))
    else:
        with FakeEndpoint(responders[mode]) as server:
            summary = profile_foreground(store, params(server.url))
        sent = {headers.get("Authorization") for _, headers, _ in server.requests}
        assert sent <= {f"Bearer {KEY}"}  # stripped before use (the issue's key kept its \r)
    if mode == "absurd usage":
        assert summary.status == "done" and summary.tokens_approximate and summary.usage_rejected
    else:
        assert summary.status == "failed" and MARK.decode() not in (summary.error or "")
    if mode == "key with a line break inside":
        assert "line break or control character inside it" in summary.error and not server.requests
    if mode == "http 401":
        assert "[REDACTED]" in summary.error
    store.close()
    assert_nowhere(store)


def test_the_issues_command_stores_and_prints_no_key(db_path: Path) -> None:
    """`printf 'sk-live-REALKEY123\\r\\n' > key.txt; export OPENAI_API_KEY="$(cat key.txt)"; energyprof profile
    --db k.db --source estimate --endpoint URL --model m --api-key-env OPENAI_API_KEY` (a server that quotes it)."""
    with FakeEndpoint(quoting_the_key(401)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "energyprof", "profile", "--db", str(db_path), "--source", "estimate", "--endpoint",
             server.url, "--model", "m", "--api-key-env", ENV], capture_output=True, timeout=120, cwd=REPO)
    assert done.returncode == 1
    assert MARK not in done.stdout and MARK not in done.stderr and b"Traceback" not in done.stderr
    assert b"refused the request (HTTP 401: bad credentials: Bearer [REDACTED])" in done.stderr
    store = Store(db_path)
    run = store.get_run(1)
    assert run["status"] == "failed" and RunSummary.from_dict(run["summary"]).error == run["error"]
    store.close()
    assert_nowhere(store)


def test_a_dashboard_job_keeps_the_key_out_of_its_log_and_the_page(store: Store) -> None:
    with FakeEndpoint(stream_quoting_the_key("error")) as server:
        run_id = jobs.launch_job(store, params(server.url).to_dict())
        wait_for(lambda: store.get_run(run_id)["status"] not in ("queued", "running"), 120, "the job")
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "[REDACTED]" in run["error"]
    log = jobs.RUN.log_path(store, run_id).read_text()
    assert "Traceback" in log and "EndpointError" in log  # the traceback is for developers, in the log
    at = open_page("pages/run.py", {"run": str(run_id)}, timeout=60)
    page = " ".join(" ".join(texts(at, kind)) for kind in ("error", "markdown", "caption", "code", "warning"))
    assert "worker died holding Bearer [REDACTED]" in page and KEY not in page
    assert "Traceback" not in page and str(jobs.RUN.log_path(store, run_id)) in page
    store.close()
    assert_nowhere(store)


def test_log_lines_and_tracebacks_are_scrubbed_once_the_key_is_read(caplog: pytest.LogCaptureFixture) -> None:
    assert redact.secret_from_env(ENV) == KEY
    logger = logging.getLogger("energyprof.test")
    with caplog.at_level(logging.INFO):
        logger.info("header %s", f"Bearer {KEY}")
        try:
            raise ValueError(f"invalid header {PLANTED!r}")
        except ValueError:
            logger.exception("request failed")
    assert MARK.decode() not in caplog.text and "[REDACTED]" in caplog.text
    assert redact.redact("a Bearer token, and Bearer abc-123456789") == "a Bearer token, and Bearer [REDACTED]"
