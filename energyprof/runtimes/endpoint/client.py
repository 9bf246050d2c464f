"""One streamed completion over HTTP (`requests`), every chunk stamped on the job clock as it arrives, and every
way it can fail turned into one sentence (EndpointError): connection refused, unknown host, TLS, HTTP 4xx/5xx
with the server's own message, unknown model, a server that ignores `stream`, malformed events, a stall.

The body is read with `raw.read1` (whatever one socket read brings, chunked or not), so a chunk is stamped when
it arrives, not when a buffer fills. The API key is read from the environment variable the user named, kept in
this object's request headers only, and appears in no message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from energyprof.runtimes.endpoint.chunks import EndpointError, StreamChunk, Usage, error_text, parse_chunk, shown
from energyprof.runtimes.endpoint.sse import SseError, SseParser
from energyprof.runtimes.endpoint.url import api_url, is_loopback, local_port, models_url, parse

READ_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
"""Most of a non-stream answer (an error, a JSON body) that is read."""
MODELS_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrival:
    """Text that arrived in one network read, on the job clock; `pieces` = the chunks that carried it."""

    t_ns: int
    text: str
    pieces: int


@dataclass
class StreamResult:
    """One streamed completion: when it was sent, each arrival with text, and what the server reported."""

    t_request_ns: int
    arrivals: list[Arrival] = field(default_factory=list)
    usage: Usage | None = None
    model: str | None = None
    finish_reason: str | None = None


class EndpointClient:
    """Streams completions from one endpoint with the run's parameters."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self.base = params.endpoint.strip()
        self.url = api_url(self.base, params.api)
        parts = parse(self.base)
        self.where = f"{parts.hostname}:{local_port(self.base)}"
        self.session = requests.Session()
        self.session.trust_env = not is_loopback(self.base)  # no proxy (or .netrc) between us and a local server
        self.session.headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        key = os.environ.get(params.api_key_env) if params.api_key_env else None
        if params.api_key_env and not key:
            raise EndpointError("The environment variable named by --api-key-env is not set (or empty) for the job; "
                                "export it where energyprof runs.")
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def close(self) -> None:
        self.session.close()

    # -- the request ----------------------------------------------------------------------------
    def body(self, max_tokens: int) -> dict[str, Any]:
        """The request: the prompt as one user message (chat) or as the prompt (completions), streamed with usage."""
        p = self.params
        body: dict[str, Any] = {"model": p.model, "max_tokens": max_tokens, "temperature": p.temperature,
                                "stream": True, "stream_options": {"include_usage": True}}
        if p.api == "chat":
            body["messages"] = [{"role": "user", "content": p.prompt}]
        else:
            body["prompt"] = p.prompt
        if p.top_p < 1.0:
            body["top_p"] = p.top_p
        if p.temperature > 0:
            body["seed"] = p.seed
        if p.ignore_eos:
            body["ignore_eos"] = True
        return body

    def stream(self, max_tokens: int, clock: Callable[[], int],
               on_text: Callable[[int, Arrival], None] | None = None) -> StreamResult:
        """Send one streaming request and read it to the end; every read that completes a chunk is stamped with
        `clock()`, and each arrival of text goes to `on_text(request time, arrival)` at once (so an interrupted
        stream keeps what came). EndpointError (one sentence) for every failure."""
        t0 = clock()
        result = StreamResult(t0)
        log.debug("endpoint: streaming request to %s (max_tokens %d)", self.where, max_tokens)
        try:
            return self._stream(t0, result, max_tokens, clock, on_text)
        except EndpointError as exc:
            log.info("endpoint: request to %s failed after %d arrivals of text: %s", self.where, len(result.arrivals),
                     exc)
            raise

    def _stream(self, t0: int, result: StreamResult, max_tokens: int, clock: Callable[[], int],
                on_text: Callable[[int, Arrival], None] | None) -> StreamResult:
        with self._post(self.body(max_tokens)) as response:
            self._check(response)
            last_text_ns = t0
            for t_ns, chunks in self._chunks(response, clock):
                text, pieces = "", 0
                for chunk in chunks:
                    text, pieces = text + chunk.text, pieces + chunk.pieces
                    result.usage = chunk.usage or result.usage
                    result.model = result.model or chunk.model
                    result.finish_reason = chunk.finish_reason or result.finish_reason
                if text:
                    result.arrivals.append(Arrival(t_ns, text, pieces))
                    if on_text is not None:
                        on_text(t0, result.arrivals[-1])
                    last_text_ns = t_ns
                elif (t_ns - last_text_ns) / 1e9 > self.params.timeout_s:
                    raise self._stalled("sent only keep-alives, no text,")
        return result

    def _post(self, body: dict[str, Any]) -> requests.Response:
        timeout = self.params.timeout_s
        try:
            return self.session.post(self.url, data=json.dumps(body), stream=True, allow_redirects=False,
                                     timeout=(timeout, timeout), headers={"Content-Type": "application/json"})
        except requests.exceptions.ConnectTimeout:
            raise EndpointError(f"No connection to {self.where} within {timeout:g} s; check that the server runs "
                                "and the URL, or raise --timeout-s.") from None
        except requests.exceptions.ReadTimeout:
            raise self._stalled("did not answer") from None
        except requests.exceptions.ConnectionError as exc:
            raise EndpointError(self._connection_failure(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise EndpointError(f"The request to {self.url} failed: {shown(exc)}.") from None

    def _connection_failure(self, exc: BaseException) -> str:
        causes = list(_causes(exc))
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return (f"Nothing is listening at {self.where} (connection refused); start the server (e.g. `ollama "
                    "serve`) or check the URL's port.")
        if any(isinstance(c, urllib3.exceptions.NameResolutionError) for c in causes):
            return f"The endpoint's host {parse(self.base).hostname} is not known (DNS lookup failed); check the URL."
        if isinstance(exc, requests.exceptions.SSLError):
            return f"The TLS connection to {self.where} failed ({shown(_innermost(causes))}); check the URL's scheme."
        return f"Could not connect to {self.where}: {shown(_innermost(causes))}."

    def _stalled(self, what: str) -> EndpointError:
        return EndpointError(f"The server at {self.where} {what} within {self.params.timeout_s:g} s (stalled); "
                             "check that it is not busy or hung, or raise --timeout-s.")

    # -- the answer -----------------------------------------------------------------------------
    def _check(self, response: requests.Response) -> None:
        """An HTTP error, a redirect or an answer that is not an event stream becomes EndpointError."""
        status = response.status_code
        if 300 <= status < 400:
            target = response.headers.get("Location") or "elsewhere"
            raise EndpointError(f"The server redirected {self.url} to {shown(target)}; give the API base it "
                                "redirects to as --endpoint.")
        if status >= 400:
            raise EndpointError(self._http_failure(status, response.reason or "", self._read_body(response)))
        media = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if "json" in media:
            body = self._read_body(response)
            message = error_text(_json(body))
            if message is not None:
                raise EndpointError(f"The server answered with an error: {shown(message)}.")
            raise EndpointError(f"The server at {self.where} answered with one JSON body instead of a stream (it "
                                "ignores `stream: true`), so the time of each token cannot be measured; use a server "
                                "or --api that streams.")
        if media not in ("", "text/event-stream", "text/plain", "application/octet-stream"):
            raise EndpointError(f"The server answered with {shown(media, 60)}, not an event stream; check that the "
                                "URL is an OpenAI-compatible API base (e.g. ending in /v1).")

    def _http_failure(self, status: int, reason: str, body: bytes) -> str:
        message = error_text(_json(body)) or body.decode("utf-8", errors="replace").strip() or reason or "no message"
        said = f"HTTP {status}: {shown(message)}"
        model = self.params.model
        if status in (400, 404, 422) and (model in message or (status == 404 and "model" in message.lower())):
            served = self.models()
            listed = f" It serves: {shown(', '.join(served))}." if served else ""
            return f"The server at {self.where} does not serve the model {shown(model, 80)!r} ({said}).{listed}"
        if status in (401, 403):
            how = ("check the key in the environment variable named by --api-key-env" if self.params.api_key_env
                   else "give --api-key-env with the name of an environment variable holding the key")
            return f"The server refused the request ({said}); {how}."
        if status == 404:
            return (f"The server at {self.where} has no {parse(self.url).path} ({said}); give the API base URL (e.g. "
                    "http://127.0.0.1:11434/v1) and check --api.")
        return f"The server answered {said}."

    def _read_body(self, response: requests.Response) -> bytes:
        try:
            return response.raw.read(MAX_BODY_BYTES, decode_content=True) or b""
        except (urllib3.exceptions.HTTPError, OSError):
            return b""

    def _chunks(self, response: requests.Response, clock: Callable[[], int]) -> Iterator[tuple[int, list[StreamChunk]]]:
        """(arrival time, the chunks completed by that read) until `[DONE]` or the end of the stream."""
        parser = SseParser()
        while True:
            try:
                data = response.raw.read1(READ_BYTES)
            except urllib3.exceptions.ReadTimeoutError:
                raise self._stalled("sent nothing") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    raise self._stalled("sent nothing") from None
                raise EndpointError(f"The connection to {self.where} broke during the stream "
                                    f"({shown(_innermost(list(_causes(exc))))}).") from None
            t_ns = clock()
            try:
                events = parser.feed(data) if data else parser.close()
            except SseError as exc:
                raise EndpointError(str(exc)) from None
            chunks, done = [], False
            for event in events:
                chunk = parse_chunk(event.data)
                if chunk is None:
                    done = True
                    break
                chunks.append(chunk)
            yield t_ns, chunks
            if done or not data:
                return

    def models(self) -> list[str] | None:
        """The model ids the server lists at /models; None when it lists none or cannot say."""
        try:
            answer = self.session.get(models_url(self.base), timeout=min(MODELS_TIMEOUT_S, self.params.timeout_s),
                                      allow_redirects=False)
            data = answer.json().get("data") if answer.ok else None
        except (requests.exceptions.RequestException, ValueError, AttributeError):
            return None
        if not isinstance(data, list):
            return None
        ids = [m.get("id") for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return ids or None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (args, urllib3's `reason`, __cause__, __context__)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__,
                  *(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _innermost(causes: list[BaseException]) -> str:
    """The most specific description of a failure: the last wrapped exception that has a message."""
    for exc in reversed(causes):
        if str(exc).strip():
            return str(exc)
    return type(causes[-1]).__name__ if causes else "no details"
