"""OpenAI-compatible servers for the endpoint tests, all on 127.0.0.1 and all bounded in time:

- `FakeEndpoint`: a small scripted HTTP server in a thread of the test process (every fault: refusals, HTTP
  errors, JSON instead of a stream, malformed events, stalls), stopped by the test and after `LIFETIME_S` anyway;
- `serve_tiny` / `stop_server`: the real `transformers serve` over the built-in tiny model saved to a folder,
  started *detached* (not a descendant of the test process, like a server a user runs) under a watchdog that
  kills it after `LIFETIME_S`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

LIFETIME_S = 600
START_TIMEOUT_S = 120
FAKE_MODEL = "fake-model"
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"

Responder = Callable[["Handler", dict[str, Any]], None]


# -- a scripted server in a thread ------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    """Answers GET /v1/models itself and every POST with the server's responder."""

    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_json(200, {"object": "list", "data": [{"id": FAKE_MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, dict(self.headers), body))
        self.server.respond(self, body)

    def send_json(self, status: int, obj: Any, content_type: str = "application/json") -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_pieces(self, pieces: Iterable[bytes], *, chunked: bool = True, delay_s: float = 0.0,
                    content_type: str = "text/event-stream") -> None:
        """Stream raw bytes, each piece in its own write (HTTP/1.1 chunked, or HTTP/1.0 ended by closing)."""
        self.protocol_version = "HTTP/1.1" if chunked else "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked") if chunked else self.send_header("Connection", "close")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            self.wfile.flush()
            if delay_s:
                time.sleep(delay_s)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, dict[str, str], dict[str, Any]]]
    respond: Responder

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a stall test) is expected, not a failure of the server


class FakeEndpoint:
    """A scripted OpenAI-compatible server on a free port of 127.0.0.1 (use as a context manager)."""

    def __init__(self, respond: Responder) -> None:
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.requests, self.server.respond = [], respond
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(LIFETIME_S, self.close)
        self.timer.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def requests(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        return self.server.requests

    def __enter__(self) -> FakeEndpoint:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()


def chunk(text: str | None = None, *, api: str = "chat", usage: dict[str, int] | None = None,
          finish: str | None = None, model: str = FAKE_MODEL) -> dict[str, Any]:
    """One OpenAI streaming chunk (usage-only when text is None and usage is given, as OpenAI sends it)."""
    if api == "chat":
        choices = [{"index": 0, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}]
    else:
        choices = [{"index": 0, "text": text or "", "finish_reason": finish}]
    out: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "model": model,
                           "choices": [] if text is None and usage else choices}
    if usage:
        out["usage"] = usage
    return out


def event(obj: Any, eol: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(obj).encode() + eol + eol


def token_stream(n: int, *, api: str = "chat", usage: bool = True, prompt_tokens: int = 7, done: bool = True,
                 eol: bytes = b"\n") -> list[bytes]:
    """The events of a normal stream of n one-token chunks: a role chunk, the tokens, usage, [DONE]."""
    pieces = [event({**chunk(api=api), "choices": [{"index": 0, "delta": {"role": "assistant"}}]}, eol)]
    pieces += [event(chunk(f"t{i} ", api=api), eol) for i in range(n)]
    if usage:
        pieces.append(event(chunk(api=api, usage={"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                                  "total_tokens": prompt_tokens + n}), eol))
    if done:
        pieces.append(b"data: [DONE]" + eol + eol)
    return pieces


def streaming(n_of: Callable[[dict[str, Any]], int] | None = None, **options: Any) -> Responder:
    """A responder streaming `max_tokens` one-token chunks (or n_of(body))."""
    chunked = options.pop("chunked", True)
    delay_s = options.pop("delay_s", 0.0)

    def respond(handler: Handler, body: dict[str, Any]) -> None:
        n = n_of(body) if n_of else int(body.get("max_tokens") or 1)
        api = "chat" if "messages" in body else "completions"
        handler.send_pieces(token_stream(n, api=api, **options), chunked=chunked, delay_s=delay_s)
    return respond


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a detached real server -----------------------------------------------------------------------------
_WATCHDOG = """
import os, signal, subprocess, sys
lifetime, log, argv = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
with open(log, "ab") as out:
    child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
print(child.pid, flush=True)
try:
    child.wait(timeout=lifetime)
except subprocess.TimeoutExpired:
    os.killpg(child.pid, signal.SIGKILL)
"""
_LAUNCHER = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], start_new_session=True)
"""


def start_detached(argv: list[str], log: Path, lifetime_s: float = LIFETIME_S) -> int:
    """Start argv so that it is not a descendant of this process (its launcher exits at once), under a watchdog
    that kills it after lifetime_s; returns its pid (its own process group)."""
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _WATCHDOG, str(lifetime_s), str(log), *argv],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = launcher.stdout.readline()
    finally:
        launcher.stdout.close()
        launcher.wait(timeout=30)
    return int(line)


def stop_detached(pid: int) -> None:
    """SIGTERM to the process group, SIGKILL after 15 s; returns when the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)


def save_tiny_for_serving(folder: Path) -> Path:
    """The built-in tiny model and a tokenizer with the same ids (ByT5's: byte b is id b + 3) saved for
    `transformers serve`, which streams only through a fast tokenizer: each byte is one printable character
    (GPT-2's byte-to-unicode map), so every generated token streams as one chunk of text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from energyprof.runtimes.transformers.models import build_builtin, builtin_tokenizer

    slow = builtin_tokenizer()
    vocab = {"<pad>": slow.pad_token_id, "</s>": slow.eos_token_id, "<unk>": slow.unk_token_id}
    vocab.update({char: byte + 3 for byte, char in bytes_to_unicode().items()})
    vocab.update({f"<extra_id_{i}>": 259 + i for i in range(len(slow) - 259)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    assert fast("Hi")["input_ids"] == slow("Hi")["input_ids"][:-1]  # the same ids (ByT5 adds </s>)
    build_builtin("tiny").save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def serve_tiny(folder: Path, log: Path) -> tuple[int, str]:
    """`transformers serve` over the folder on a free port of 127.0.0.1; (pid, API base URL) once it answers."""
    port = free_port()
    serve = Path(sys.executable).with_name("transformers")
    argv = [str(serve), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--log-level", "warning"]
    pid = start_detached(argv, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if json.loads(answer.read()).get("status") == "ok":
                    return pid, f"http://127.0.0.1:{port}/v1"
        if not psutil.pid_exists(pid):
            break
        time.sleep(0.25)
    stop_detached(pid)
    raise RuntimeError(f"transformers serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
