"""Server-sent events (the HTML standard's `text/event-stream`), parsed incrementally from bytes as they arrive.

Lines end with CRLF, LF or CR, and a network read may end anywhere: inside a line, inside a CRLF pair or
inside a UTF-8 character. `data:` lines of one event are joined with newlines; comments (`:` lines) and other
fields are skipped; an event ends at a blank line. A last event the server did not end with a blank line is
still delivered when the stream closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from energyprof.errors import EnergyprofError

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""Longest line or event kept in memory; a longer one is an error, not an allocation."""
_EOL = re.compile(rb"\r\n|\r|\n")


class SseError(EnergyprofError, ValueError):
    """The stream cannot be read as server-sent events; the message is one sentence."""


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its data (data lines joined by newlines) and its type (None for a plain message)."""

    data: str
    event: str | None = None


class SseParser:
    """Feed bytes, get the events completed by them."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._data_bytes = 0
        self._event: str | None = None
        self._skip_lf = False
        self._started = False
        self.comments = 0
        """Comment lines seen (servers send them as keep-alives)."""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events that these bytes complete, in order."""
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        for match in _EOL.finditer(self._buffer):
            if match.group() == b"\r" and match.end() == len(self._buffer):
                self._skip_lf = True  # the LF of a CRLF pair may come with the next read
            self._line(bytes(self._buffer[start:match.start()]), events)
            start = match.end()
        del self._buffer[:start]
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise SseError(f"The server sent a stream line longer than {MAX_EVENT_BYTES // 2**20} MB; it is not an "
                           "event stream energyprof can read.")
        return events

    def close(self) -> list[SseEvent]:
        """The stream ended: the last line and event, even without the blank line that should end them."""
        events: list[SseEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[SseEvent]) -> None:
        if not self._started:
            self._started = True
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw:
            if self._data:
                events.append(SseEvent("\n".join(self._data), self._event))
            self._data, self._data_bytes, self._event = [], 0, None
            return
        if raw.startswith(b":"):
            self.comments += 1
            return
        name, _, value = raw.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            self._data_bytes += len(value)
            if self._data_bytes > MAX_EVENT_BYTES:
                raise SseError(f"The server sent a stream event longer than {MAX_EVENT_BYTES // 2**20} MB; it is "
                               "not an event stream energyprof can read.")
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
