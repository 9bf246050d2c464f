"""The pure parts of an endpoint run: server-sent events split anywhere, OpenAI chunks, the URL and key-name
rules, and how the server's token count is spread over the streamed chunks."""

from __future__ import annotations

import json

import pytest

from energyprof.runtimes.endpoint.chunks import EndpointError, parse_chunk
from energyprof.runtimes.endpoint.sse import MAX_EVENT_BYTES, SseError, SseEvent, SseParser
from energyprof.runtimes.endpoint.url import api_key_env_problem, api_url, endpoint_problem
from energyprof.runtimes.endpoint.workload import spread
from energyprof.spec.params import ProfileParams, not_in_mode

TRICKY = ("\ufeff: a comment the server sends as a keep-alive\r\n"
          "data: {\"choices\": [{\"delta\": {\"content\": \"h\u00e9\"}}]}\r\n\r\n"
          "event: message\n"
          "data: {\"choices\": [{\"delta\":\n"
          "data:  {\"content\": \"\u4e16\u754c\"}}]}\n\n"
          "id: 7\rretry: 100\rdata:[DONE]\r\r").encode()
EXPECTED = [SseEvent('{"choices": [{"delta": {"content": "h\u00e9"}}]}'),
            SseEvent('{"choices": [{"delta":\n {"content": "\u4e16\u754c"}}]}', "message"),
            SseEvent("[DONE]")]


def _parse(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.close()


def test_events_are_the_same_wherever_the_network_splits_the_stream() -> None:
    assert _parse([TRICKY]) == EXPECTED
    for cut in range(1, len(TRICKY)):  # inside lines, inside CRLF pairs, inside UTF-8 characters
        assert _parse([TRICKY[:cut], TRICKY[cut:]]) == EXPECTED, cut
    assert _parse([bytes([b]) for b in TRICKY]) == EXPECTED


def test_comments_are_counted_and_a_last_event_without_blank_line_is_kept() -> None:
    parser = SseParser()
    assert parser.feed(b": ping\n\n: ping\n") == []
    assert parser.comments == 2
    assert parser.feed(b"data: [DONE]") == []
    assert parser.close() == [SseEvent("[DONE]")]


def test_a_line_longer_than_the_limit_is_an_error_not_an_allocation() -> None:
    parser = SseParser()
    with pytest.raises(SseError, match="longer than 16 MB"):
        for _ in range(MAX_EVENT_BYTES // 2**20 + 2):
            parser.feed(b"x" * 2**20)


def test_chat_completion_reasoning_and_usage_chunks() -> None:
    chat = parse_chunk(json.dumps({"model": "m", "choices": [{"delta": {"content": "a", "reasoning_content": "b"}}]}))
    assert (chat.text, chat.pieces, chat.model) == ("ab", 1, "m")
    text = parse_chunk(json.dumps({"choices": [{"text": "c", "finish_reason": "length"}]}))
    assert (text.text, text.finish_reason) == ("c", "length")
    usage = parse_chunk(json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 40}}))
    assert usage.text == "" and usage.usage.prompt_tokens == 3 and usage.usage.completion_tokens == 40
    assert parse_chunk(json.dumps({"choices": [{"delta": {"role": "assistant"}}]})).pieces == 0
    assert parse_chunk(" [DONE] ") is None


@pytest.mark.parametrize(("data", "says"), [
    ("not json", "not JSON ('not json')"),
    ("[1, 2]", "list data instead of an OpenAI chunk"),
    ('{"object": "ping"}', "not an OpenAI chunk (no choices"),
    ('{"error": {"message": "CUDA out of memory"}}', "error during the stream: CUDA out of memory."),
    ('{"error": "model crashed"}', "error during the stream: model crashed."),
])
def test_events_that_are_not_openai_chunks_are_one_sentence(data: str, says: str) -> None:
    with pytest.raises(EndpointError) as raised:
        parse_chunk(data)
    assert says in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("url", "says"), [
    ("", "is empty"),
    ("ftp://127.0.0.1/v1", "must start with http:// or https:// (not ftp://)"),
    ("127.0.0.1:11434/v1", "must start with http:// or https://"),
    ("http:///v1", "has no host"),
    ("http://user:secret@127.0.0.1/v1", "user name or password"),
    ("http://127.0.0.1:99999/v1", "port is not a number"),
    ("http://127.0.0.1:11434/v1?key=x", "without ?query"),
    ("http://127.0.0.1:11434/v1 x", "spaces or control characters"),
])
def test_endpoint_urls_that_cannot_be_used(url: str, says: str) -> None:
    problem = endpoint_problem(url)
    assert problem is not None and says in problem
    assert "secret" not in problem


def test_endpoint_urls_that_can_be_used() -> None:
    for url in ("http://127.0.0.1:11434/v1", "https://api.example.com/v1/", "http://[::1]:8080/v1", "HTTP://h/v1"):
        assert endpoint_problem(url) is None, url
    assert api_url("http://h:1/v1/", "chat") == "http://h:1/v1/chat/completions"
    assert api_url("http://h:1/v1", "completions") == "http://h:1/v1/completions"


def test_the_key_setting_takes_a_variable_name_and_never_echoes_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    assert api_key_env_problem(None) is None and api_key_env_problem("MY_KEY") is None
    for pasted in ("sk-proj-abc123", "NOT_SET_KEY"):
        problem = api_key_env_problem(pasted)
        assert problem is not None and pasted not in problem and "NAME" in problem


def test_endpoint_parameters_are_checked_with_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = ProfileParams(endpoint="http://127.0.0.1:11434/v1", model="llama3.2")
    assert ok.mode == "endpoint" and ok.errors() == []
    assert ProfileParams().mode == "local"
    assert "name the server knows" in ProfileParams(endpoint="http://127.0.0.1:1/v1", model=" ").errors()[0]
    assert ProfileParams(endpoint="http://127.0.0.1:1/v1", model="m", api="responses").errors()
    assert ProfileParams(endpoint="http://127.0.0.1:1/v1", model="m", timeout_s=0).errors()
    assert set(not_in_mode("endpoint")) == {"device", "dtype", "runtime", "layers", "trust_remote_code", "batch",
                                            "prompt_tokens", "prompts", "layer_energy", "replay_step", "replay_s",
                                            "replay_trials"}
    assert set(not_in_mode("local")) == {"endpoint", "api", "api_key_env", "timeout_s", "server_pid"}


@pytest.mark.parametrize(("total", "weights"), [(39, [1] * 39), (39, [1] * 11), (5, [3, 1, 1]), (0, [1, 2]),
                                                (7, [0, 0]), (2, [1, 1, 1, 1])])
def test_tokens_spread_over_chunks_add_up_to_the_servers_count(total: int, weights: list[int]) -> None:
    parts = spread(total, weights)
    assert sum(parts) == total and len(parts) == len(weights) and min(parts) >= 0
    if len(set(weights)) == 1 and weights:
        assert max(parts) - min(parts) <= 1  # equal chunks carry equal shares
    assert spread(4, []) == []
    assert spread(6, [2, 1]) == [4, 2]
