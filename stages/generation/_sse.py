"""An incremental Server-Sent Events decoder, exact on what OpenAI-compatible servers send.

Bytes arrive in arbitrary pieces; events come out whole. Per the SSE spec: lines end in CRLF,
LF or CR (a CRLF split across two reads is one line end); ``:`` starts a comment (keep-alives);
``data:`` lines accumulate, joined by newlines; a blank line dispatches the event; ``event:``
names it; ``id:`` and ``retry:`` are accepted and unused. Unlike the spec, data still pending
when the stream ends is dispatched: some servers omit the last blank line, and a reply must
not lose its end. Also unlike the spec, memory is bounded: a line, or an event's data lines
together, longer than ``max_event_bytes`` raise :class:`SSELimitError` (a server that sends an
endless line must not make a stream grow without end).
"""

from __future__ import annotations

import attrs

from railstream.config_schema import RailstreamError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent", "SSELimitError"]

# 1 MiB: thousands of times a streamed chunk (a few hundred bytes).
DEFAULT_MAX_EVENT_BYTES = 1 << 20


class SSELimitError(RailstreamError, ValueError):
    """A line or an event longer than the decoder's limit; the message names the limit."""


@attrs.frozen
class SSEEvent:
    data: str
    event: str = "message"


class SSEDecoder:
    """``feed(bytes)`` returns the events completed so far; ``close()`` the last one."""

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        self._after_cr = False  # the last piece ended in CR: a following LF belongs to it
        self._data: list[str] = []
        self._size = 0  # bytes of the pending event's data lines
        self._event = ""

    def feed(self, piece: bytes) -> list[SSEEvent]:
        if not piece:
            return []  # an empty read must not forget a CR that ended the previous one
        if (
            not self._buffer
            and not self._data
            and not self._event
            and piece.startswith(b"data: ")
            and piece.endswith(b"\n\n")
            and piece.count(b"\n") == 2
            and b"\r" not in piece
            and len(piece) <= self._max
        ):
            # What servers send per token: one whole event, one data line, LF ends. Decoded
            # here as the general path below would, in two thirds of its time (this runs per token).
            self._after_cr = False
            return [SSEEvent(piece[6:-2].decode("utf-8", errors="replace"))]
        if self._after_cr and piece.startswith(b"\n"):
            piece = piece[1:]
        self._after_cr = piece.endswith(b"\r")
        buffer = self._buffer + piece
        events: list[SSEEvent] = []
        # The common case (LF only) splits fast; CR and CRLF are normalised only when present.
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buffer = buffer.split(b"\n")
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) > self._max:
            # Checked per read, not only per line end: a line that never ends is the one to stop.
            raise self._too_long("line")
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a last line without its line end, and pending data, are dispatched."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer)
            self._buffer = b""
        if self._data:
            events.append(self._dispatch())
        return events

    def _too_long(self, what: str) -> SSELimitError:
        return SSELimitError(
            f"the provider sent an SSE {what} longer than {self._max} bytes (max_event_bytes)"
        )

    def _line(self, raw: bytes) -> SSEEvent | None:
        if len(raw) > self._max:
            raise self._too_long("line")
        if not raw:
            if self._data:
                return self._dispatch()
            self._event = ""  # a blank line with no data dispatches nothing
            return None
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None  # a comment: keep-alive
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._size += len(raw)
            if self._size > self._max:
                raise self._too_long("event")
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(data="\n".join(self._data), event=self._event or "message")
        self._data = []
        self._size = 0
        self._event = ""
        return event
