"""What one streamed OpenAI chunk says: the generated text, the token usage, the model id, the finish reason.

Chat chunks carry text in `choices[i].delta.content` (reasoning models also in `delta.reasoning_content` or
`delta.reasoning`), completion chunks in `choices[i].text`; `usage` comes in the last chunk when asked for
(`stream_options.include_usage`), often with an empty `choices`. `[DONE]` ends the stream. An event that is not
such a chunk, or an `error` object the server streams instead, is an EndpointError with one sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from energyprof.errors import EnergyprofError
from energyprof.textsafe import terminal_text

DONE = "[DONE]"
TEXT_KEYS: tuple[str, ...] = ("content", "reasoning_content", "reasoning")
"""Keys of a chat delta that hold generated text (reasoning models stream their thinking separately)."""
SHOWN_CHARS = 200


class EndpointError(EnergyprofError, ValueError):
    """The endpoint could not be profiled; the message is one sentence saying what happened and what to do."""


@dataclass(frozen=True)
class Usage:
    """Token counts the server reported (None when it left one out)."""

    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class StreamChunk:
    """One parsed chunk: the text it adds, how many choice pieces carried text, usage, model id, finish reason."""

    text: str = ""
    pieces: int = 0
    usage: Usage | None = None
    model: str | None = None
    finish_reason: str | None = None


def shown(text: object, limit: int = SHOWN_CHARS) -> str:
    """A server's text for a sentence: control characters escaped (energyprof.textsafe), so it stays one inert
    line, at most `limit` characters, no trailing period."""
    return terminal_text(str(text).strip(), limit).rstrip(".")


def error_text(body: Any) -> str | None:
    """The message in an error body: OpenAI's {"error": {"message"}}, {"error": "…"}, FastAPI's {"detail"}."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("msg") or json.dumps(error)[:SHOWN_CHARS]
    for value in (error, body.get("detail"), body.get("message")):
        if isinstance(value, str) and value.strip():
            return value
        if value is not None and not isinstance(value, str):
            return json.dumps(value)[:SHOWN_CHARS * 2]
    return None


def parse_chunk(data: str) -> StreamChunk | None:
    """The chunk in one event's data; None for `[DONE]`."""
    if data.strip() == DONE:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        raise EndpointError(f"The server streamed an event that is not JSON ('{shown(data, 80)}'); check that the "
                            "URL is an OpenAI-compatible API base (e.g. ending in /v1).") from None
    if not isinstance(body, dict):
        raise EndpointError(f"The server streamed {type(body).__name__} data instead of an OpenAI chunk "
                            f"('{shown(data, 80)}'); check that the URL is an OpenAI-compatible API base.")
    message = error_text(body) if "error" in body else None
    if message is not None:
        raise EndpointError(f"The server reported an error during the stream: {shown(message)}.")
    choices = body.get("choices")
    if not isinstance(choices, list) and "usage" not in body:
        raise EndpointError(f"The server streamed an event that is not an OpenAI chunk (no choices: "
                            f"'{shown(data, 80)}'); check that the URL is an OpenAI-compatible API base.")
    texts, finish = [], None
    for choice in choices or []:
        if not isinstance(choice, dict):
            continue
        piece = _choice_text(choice)
        if piece:
            texts.append(piece)
        finish = choice.get("finish_reason") or finish
    model = body.get("model")
    return StreamChunk("".join(texts), len(texts), _usage(body.get("usage")),
                       model if isinstance(model, str) and model else None,
                       finish if isinstance(finish, str) else None)


def _choice_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    parts = [delta.get(key) for key in TEXT_KEYS] if isinstance(delta, dict) else []
    parts.append(choice.get("text"))
    return "".join(p for p in parts if isinstance(p, str))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    usage = Usage(_count(value.get("prompt_tokens")), _count(value.get("completion_tokens")))
    return usage if usage.prompt_tokens is not None or usage.completion_tokens is not None else None
