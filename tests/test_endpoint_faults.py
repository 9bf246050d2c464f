"""Endpoint runs against small scripted servers on 127.0.0.1: streams framed every way a server may frame them
give the same steps and tokens, the request is what the OpenAI API expects, the API key is used but never
stored or logged, and every bad endpoint ends the run as `failed` with one sentence."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from endpoint_servers import FAKE_MODEL, FakeEndpoint, Handler, chunk, event, free_port, streaming, token_stream
from profile_helpers import wait_for

from energyprof.runner import jobs
from energyprof.runner.job import profile_foreground
from energyprof.spec.params import ProfileParams
from energyprof.store import Store
from energyprof.summary import RunSummary

SECRET = "sk-test-0123456789-do-not-store"


def endpoint_params(url: str, **overrides: Any) -> ProfileParams:
    values = {"endpoint": url, "model": FAKE_MODEL, "prompt": "Hello energy", "max_new_tokens": 6,
              "source": "estimate", "interval_ms": 20, "repeats": 2, "warmup": 0, "baseline_s": 0.1,
              "timeout_s": 5.0}
    return ProfileParams(**{**values, **overrides})


def profile(store: Store, url: str, **overrides: Any) -> RunSummary:
    return profile_foreground(store, endpoint_params(url, **overrides))


def assert_failed(store: Store, summary: RunSummary, says: str) -> None:
    """A failed run with one sentence (no traceback in it) that says `says`, stored on the run row."""
    assert summary.status == "failed", summary.error
    error = summary.error or ""
    assert says in error, error
    assert "\n" not in error and "Traceback" not in error and error.endswith(".")
    run = store.get_run(summary.run_id)
    assert run["status"] == "failed" and run["error"] == error


def _split_everywhere(pieces: list[bytes]) -> list[bytes]:
    """The same bytes cut at awkward places: inside `data:`, between CR and LF, inside JSON strings."""
    data = b"".join(pieces)
    cuts = sorted({3, 7, *range(11, len(data), 37), *(i + 1 for i in range(len(data)) if data[i:i + 1] == b"\r")})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if data[a:b]]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_a_stream_split_anywhere_with_crlf_gives_one_step_per_token(store: Store, chunked: bool) -> None:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        n = int(body["max_tokens"])
        handler.send_pieces(_split_everywhere(token_stream(n, eol=b"\r\n", done=False)), chunked=chunked,
                            delay_s=0.002)

    with FakeEndpoint(respond) as server:
        summary = profile(store, server.url)
    assert summary.status == "done", summary.error
    assert summary.new_tokens == [6, 6] and summary.stream_chunks == [6, 6] and not summary.tokens_approximate
    assert summary.prompt_tokens == 7 and summary.server_model == FAKE_MODEL and summary.layers == "none"
    steps = store.steps(summary.run_id)
    assert list(steps["phase"]) == (["prefill"] + ["decode"] * 5) * 2
    assert list(steps["n_tokens"]) == ([7] + [1] * 5) * 2 and steps["token_id"].isna().all()
    assert "".join(steps[steps["repeat"] == 0]["token_text"]) == "t0 t1 t2 t3 t4 t5 "
    for _, rep in store.step_times_ns(summary.run_id).groupby("repeat"):  # contiguous steps
        assert (rep["t0_ns"].to_numpy()[1:] == rep["t1_ns"].to_numpy()[:-1]).all()
    assert summary.ttft_s is not None and summary.ttft_s.n == 2 and summary.ttft_s.mean > 0
    assert summary.j_per_token["decode"].mean > 0 and summary.tokens_per_s > 0
    assert summary.token_note() is None


def test_the_request_is_a_streamed_openai_request_with_usage(store: Store) -> None:
    with FakeEndpoint(streaming()) as server:
        assert profile(store, server.url, api="completions", temperature=0.5, seed=3, top_p=0.9,
                       repeats=1).status == "done"
    paths = {path for path, _, _ in server.requests}
    assert paths == {"/v1/completions"}
    _, headers, body = server.requests[-1]
    assert body == {"model": FAKE_MODEL, "prompt": "Hello energy", "max_tokens": 6, "temperature": 0.5,
                    "top_p": 0.9, "seed": 3, "stream": True, "stream_options": {"include_usage": True}}
    assert server.requests[0][2]["max_tokens"] == 1  # loading: one token, so the server loads the model first
    assert "Authorization" not in headers and headers["Accept"] == "text/event-stream"
    with FakeEndpoint(streaming()) as chat:
        assert profile(store, chat.url, repeats=1, ignore_eos=True).status == "done"
    body = chat.requests[-1][2]
    assert chat.requests[-1][0] == "/v1/chat/completions" and body["temperature"] == 0.0 and "seed" not in body
    assert body["messages"] == [{"role": "user", "content": "Hello energy"}] and body["ignore_eos"] is True


def test_without_usage_the_chunks_are_counted_and_the_counts_say_so(store: Store) -> None:
    with FakeEndpoint(streaming(usage=False)) as server:
        summary = profile(store, server.url)
    assert summary.status == "done" and summary.new_tokens == [6, 6] and summary.tokens_approximate
    assert summary.prompt_tokens is None and summary.prefill_tokens_per_s is None
    assert "approximate" in summary.token_note()
    assert summary.j_per_token["prefill"].mean is None and summary.j_per_token["decode"].mean > 0


def test_several_tokens_per_chunk_are_spread_and_the_totals_are_the_servers(store: Store) -> None:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        pieces = [event(chunk(f"{i}{i}")) for i in range(5)]
        pieces.append(event(chunk(usage={"prompt_tokens": 4, "completion_tokens": 10})))
        handler.send_pieces(pieces, delay_s=0.003)

    with FakeEndpoint(respond) as server:
        summary = profile(store, server.url, max_new_tokens=10)
    assert summary.status == "done" and summary.new_tokens == [10, 10] and summary.stream_chunks == [5, 5]
    steps = store.steps(summary.run_id, repeat=0)
    assert list(steps["n_tokens"]) == [4, 3, 2, 2, 2]  # 10 tokens − the first chunk's, spread over 4 chunks
    assert "streamed 20 tokens in 10 chunks" in summary.token_note()


def test_the_api_key_is_sent_but_never_stored_nor_logged(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYPROF_TEST_KEY", SECRET)
    with FakeEndpoint(streaming()) as server:
        summary = profile(store, server.url, api_key_env="ENERGYPROF_TEST_KEY")
        assert summary.status == "done", summary.error
        launched = jobs.launch_job(store, endpoint_params(server.url, api_key_env="ENERGYPROF_TEST_KEY").to_dict())
        wait_for(lambda: store.get_run(launched)["status"] not in ("queued", "running"), 120, "the launched job")
    assert store.get_run(launched)["status"] == "done", store.get_run(launched)["error"]
    assert {headers.get("Authorization") for _, headers, _ in server.requests} == {f"Bearer {SECRET}"}
    for run_id in (summary.run_id, launched):
        run = store.get_run(run_id)
        assert run["params"]["api_key_env"] == "ENERGYPROF_TEST_KEY"
        assert SECRET not in json.dumps(run, default=str)
    store.close()
    for path in (store.path, *store.path.parent.glob(store.path.name + "-*"), jobs.RUN.log_path(store, launched)):
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_key_variable_that_is_not_set_is_refused_before_anything_is_stored(store: Store) -> None:
    params = endpoint_params("http://127.0.0.1:1/v1", api_key_env="sk_live_pasted_key_itself")
    problems = params.errors()
    assert problems and "sk_live_pasted_key_itself" not in problems[0] and "NAME" in problems[0]


# -- every bad endpoint: a failed run and one sentence ------------------------------------------------------
def test_connection_refused(store: Store) -> None:
    port = free_port()
    summary = profile(store, f"http://127.0.0.1:{port}/v1")
    assert_failed(store, summary, f"Nothing is listening at 127.0.0.1:{port} (connection refused)")
    assert store.get_run(summary.run_id)["phase"] == "loading"  # failed before any time was spent measuring


def test_unknown_host(store: Store) -> None:
    assert_failed(store, profile(store, "http://no-such-host.invalid:8080/v1"),
                  "host no-such-host.invalid is not known (DNS lookup failed)")


def test_tls_to_a_plain_http_server(store: Store) -> None:
    with FakeEndpoint(streaming()) as server:
        summary = profile(store, server.url.replace("http://", "https://"))
    assert_failed(store, summary, "The TLS connection to 127.0.0.1:")


@pytest.mark.parametrize(("status", "body", "says"), [
    (500, {"error": {"message": "the GPU caught fire"}}, "The server answered HTTP 500: the GPU caught fire."),
    (503, {"detail": "model is loading"}, "HTTP 503: model is loading"),
    (422, {"detail": "Unexpected fields in the request: {'ignore_eos'}"}, "HTTP 422: Unexpected fields"),
    (401, {"error": {"message": "invalid api key"}}, "refused the request (HTTP 401: invalid api key); give "
                                                     "--api-key-env"),
    (404, {"error": {"message": f"model \"{FAKE_MODEL}\" not found, try pulling it first"}},
     f"does not serve the model '{FAKE_MODEL}' (HTTP 404: model \"{FAKE_MODEL}\" not found, try pulling it first)."
     f" It serves: {FAKE_MODEL}."),
    (404, {"detail": "Not Found"}, "has no /v1/chat/completions (HTTP 404: Not Found); give the API base URL"),
])
def test_http_errors_carry_the_servers_message(store: Store, status: int, body: dict[str, Any], says: str) -> None:
    with FakeEndpoint(lambda handler, _: handler.send_json(status, body)) as server:
        assert_failed(store, profile(store, server.url), says)


def test_a_plain_text_error_body(store: Store) -> None:
    def respond(handler: Handler, _: dict[str, Any]) -> None:
        handler.send_json(502, "upstream\nbroke", content_type="text/plain")

    with FakeEndpoint(respond) as server:
        assert_failed(store, profile(store, server.url), 'HTTP 502: "upstream\\nbroke"')


def test_a_server_that_ignores_stream(store: Store) -> None:
    completion = {"id": "x", "object": "chat.completion", "model": FAKE_MODEL,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "all at once"}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 3}}
    with FakeEndpoint(lambda handler, _: handler.send_json(200, completion)) as server:
        assert_failed(store, profile(store, server.url), "answered with one JSON body instead of a stream (it "
                                                         "ignores `stream: true`)")


def test_a_web_page_instead_of_an_api(store: Store) -> None:
    def respond(handler: Handler, _: dict[str, Any]) -> None:
        handler.send_pieces([b"<html><body>Welcome</body></html>"], content_type="text/html")

    with FakeEndpoint(respond) as server:
        assert_failed(store, profile(store, server.url), "answered with text/html, not an event stream")


@pytest.mark.parametrize(("pieces", "says"), [
    ([b"data: {\"choices\": [{\"delta\": {\"content\": \"a\"}}]}\n\n", b"data: <oops>\n\n"],
     "streamed an event that is not JSON ('<oops>')"),
    ([b"data: {\"object\": \"ping\"}\n\n"], "not an OpenAI chunk (no choices"),
    ([event(chunk("a")), b'data: {"error": "inference thread died"}\n\n'],
     "reported an error during the stream: inference thread died."),
])
def test_malformed_streams(store: Store, pieces: list[bytes], says: str) -> None:
    with FakeEndpoint(lambda handler, _: handler.send_pieces(pieces)) as server:
        assert_failed(store, profile(store, server.url), says)


def test_a_stream_that_ends_before_any_token(store: Store) -> None:
    pieces = [event({**chunk(), "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "stop"}]}),
              b"data: [DONE]\n\n"]
    with FakeEndpoint(lambda handler, _: handler.send_pieces(pieces)) as server:
        summary = profile(store, server.url)
    assert_failed(store, summary, "ended before any token (finish reason: stop)")
    assert summary.repeats == 0


def test_a_stall_fails_after_the_timeout(store: Store) -> None:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        stream = token_stream(2)
        if body["max_tokens"] == 1:
            handler.send_pieces(stream)
        else:  # the measured repeat stalls after its first token
            handler.send_pieces([b"".join(stream[:2]), *stream[2:]], delay_s=3.0)

    with FakeEndpoint(respond) as server:
        started = time.monotonic()
        summary = profile(store, server.url, timeout_s=0.5)
    assert_failed(store, summary, "sent nothing within 0.5 s (stalled); check that it is not busy or hung, or raise "
                                  "--timeout-s.")
    assert time.monotonic() - started < 3.0
    steps = store.steps(summary.run_id)
    assert len(steps) == 1 and steps["phase"].tolist() == ["prefill"]  # what arrived before the stall is kept


def test_keep_alives_without_tokens_are_a_stall(store: Store) -> None:
    def respond(handler: Handler, body: dict[str, Any]) -> None:
        if body["max_tokens"] == 1:
            handler.send_pieces(token_stream(1))
            return
        handler.send_pieces([b": keep-alive\n\n"] * 40, delay_s=0.05)

    with FakeEndpoint(respond) as server:
        assert_failed(store, profile(store, server.url, timeout_s=0.5), "sent only keep-alives, no text, within 0.5 s")


def test_a_redirect_is_not_followed(store: Store) -> None:
    def respond(handler: Handler, _: dict[str, Any]) -> None:
        handler.send_response(307)
        handler.send_header("Location", "http://elsewhere.invalid/v1/chat/completions")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with FakeEndpoint(respond) as server:
        assert_failed(store, profile(store, server.url), "redirected")
    assert len(server.requests) == 1
