"""The SSE decoder: exact on real servers' output, whatever the read boundaries."""

from __future__ import annotations

import inspect

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from railstream.stages._errors import GenerationError
from railstream.stages.generation._http_errors import HTTPX_ERRORS, map_httpx_error
from railstream.stages.generation._sse import (
    DEFAULT_MAX_EVENT_BYTES,
    SSEDecoder,
    SSEEvent,
    SSELimitError,
)


def decode(pieces: list[bytes], limit: int = DEFAULT_MAX_EVENT_BYTES) -> list[SSEEvent]:
    decoder = SSEDecoder(max_event_bytes=limit)
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def test_what_real_servers_send() -> None:
    stream = (
        b": keep-alive\n\n"
        b'data: {"a": 1}\n\n'
        b"event: error\r\ndata: line one\r\ndata: line two\r\n\r\n"
        b"data:no-space\rdata:  two spaces\r\r"
        b"id: 7\nretry: 100\ndata: [DONE]\n\n"
    )
    assert decode([stream]) == [
        SSEEvent('{"a": 1}'),
        SSEEvent("line one\nline two", "error"),
        SSEEvent("no-space\n two spaces"),
        SSEEvent("[DONE]"),
    ]


def test_an_event_without_its_final_blank_line_is_still_delivered() -> None:
    assert decode([b'data: {"last": true}\n']) == [SSEEvent('{"last": true}')]
    assert decode([b"data: cut"]) == [SSEEvent("cut")]


def test_a_blank_line_without_data_dispatches_nothing() -> None:
    assert decode([b"\n\n\nevent: ping\n\n"]) == []


def test_a_crlf_split_by_an_empty_read_is_one_line_end() -> None:
    # Found by the property below: the CR's state must survive an empty read.
    assert decode([b"data: 0\r", b"", b"\ndata: \r\n"]) == decode([b"data: 0\r\ndata: \r\n"])


def test_multibyte_characters_split_across_reads() -> None:
    data = "data: héllo ✓\n\n".encode()
    assert decode([data[:8], data[8:9], data[9:]]) == [SSEEvent("héllo ✓")]


# limits: a decoder holds at most one line and one event, each at most max_event_bytes


def test_a_line_that_never_ends_fails_at_the_limit_not_after() -> None:
    decoder = SSEDecoder(max_event_bytes=4096)
    assert decoder.feed(b"data: ") == []
    for _ in range(3):
        assert decoder.feed(b"x" * 1000) == []
    assert decoder.feed(b"x" * 1090) == []  # 4,096 bytes: the limit itself is allowed
    with pytest.raises(
        SSELimitError,
        match=r"^the provider sent an SSE line longer than 4096 bytes \(max_event_bytes\)$",
    ):
        decoder.feed(b"x")


def test_the_default_limit_is_one_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 1 << 20
    decoder = SSEDecoder()
    decoder.feed(b"x" * DEFAULT_MAX_EVENT_BYTES)  # exactly the limit is allowed
    with pytest.raises(SSELimitError, match=r"^the provider sent an SSE line longer than 1048576"):
        decoder.feed(b"x")


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([b"data: " + b"x" * 95 + b"\n\n"], id="one-read-one-event"),
        pytest.param([b"data: " + b"x" * 95 + b"\n\ndata: ok\n\n"], id="one-read-two-events"),
        pytest.param([b"data: " + b"x" * 50, b"x" * 45 + b"\n\n"], id="two-reads"),
        pytest.param([b": " + b"x" * 99 + b"\n"], id="a-comment"),
    ],
)
def test_a_whole_line_over_the_limit_fails_however_it_arrives(pieces: list[bytes]) -> None:
    """101 bytes against a limit of 100: the fast path (one event per read) must not skip
    the check the general path makes."""
    with pytest.raises(SSELimitError, match=r"^the provider sent an SSE line longer than 100 "):
        decode(pieces, 100)


def test_a_line_at_the_limit_is_decoded() -> None:
    data = "x" * 94
    assert decode([f"data: {data}\n\n".encode()], 100) == [SSEEvent(data)]
    assert decode([f"data: {data}".encode()], 100) == [SSEEvent(data)]


def test_an_event_of_many_short_lines_over_the_limit_fails() -> None:
    """Each data line is short; together they are the event the decoder would have to hold."""
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed(b"data: " + b"x" * 44 + b"\n")  # 50 bytes
    decoder.feed(b"data: " + b"x" * 44 + b"\n")  # 100: still allowed
    with pytest.raises(SSELimitError, match=r"^the provider sent an SSE event longer than 100 "):
        decoder.feed(b"data: x\n")


def test_the_event_limit_counts_each_event_afresh() -> None:
    events = [b"data: " + b"x" * 90 + b"\n\n"] * 20
    assert len(decode([b"".join(events)], 100)) == 20


lines = st.lists(
    st.one_of(
        st.builds(
            lambda t: f"data: {t}",
            # No lone surrogates: they have no UTF-8 form, so no server can send them.
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                max_size=20,
            ),
        ),
        st.just(": keep-alive"),
        st.just("event: message"),
        st.just(""),
        st.just("data: [DONE]"),
    ),
    max_size=30,
)


@given(lines, st.sampled_from(["\n", "\r\n", "\r"]), st.data())
def test_the_same_events_however_the_bytes_are_split_into_reads(
    body: list[str], newline: str, data: st.DataObject
) -> None:
    """Splitting the byte stream at any points (inside a CRLF, inside a UTF-8 character)
    yields exactly the events of reading it whole."""
    raw = "".join(line + newline for line in body).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert decode(pieces) == decode([raw])


@given(lines, st.sampled_from(["\n", "\r\n", "\r"]))
def test_the_same_events_when_each_read_holds_one_event_as_servers_send(
    body: list[str], newline: str
) -> None:
    """Reads cut after each blank line (one event per read, the decoder's fast path) yield
    exactly the events of reading the stream whole."""
    raw = "".join(line + newline for line in body).encode()
    blank = (newline * 2).encode()
    pieces = [part + blank for part in raw.split(blank)]
    pieces[-1] = pieces[-1][: len(pieces[-1]) - len(blank)]
    assert b"".join(pieces) == raw
    assert decode(pieces) == decode([raw])


@given(lines, st.sampled_from(["\n", "\r\n", "\r"]), st.integers(1, 60), st.data())
def test_a_limit_is_met_alike_however_the_bytes_are_split_into_reads(
    body: list[str], newline: str, limit: int, data: st.DataObject
) -> None:
    """The same events, or the same error naming the same limit, whatever the read
    boundaries: the limit is a property of the stream, not of how it arrived."""
    raw = "".join(line + newline for line in body).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]

    def outcome(reads: list[bytes]) -> list[SSEEvent] | str:
        try:
            return decode(reads, limit)
        except SSELimitError as exc:
            return str(exc)

    assert outcome(pieces) == outcome([raw])


def httpx_exceptions() -> list[type[Exception]]:
    return [
        obj
        for name in httpx.__all__
        if inspect.isclass(obj := getattr(httpx, name)) and issubclass(obj, Exception)
    ]


@pytest.mark.parametrize("cls", httpx_exceptions(), ids=lambda c: c.__name__)
def test_every_httpx_error_is_mapped_explicitly(cls: type[Exception]) -> None:
    assert cls in HTTPX_ERRORS, (
        f"httpx.{cls.__name__} has no entry: map it to one of railstream's errors"
    )
    error = map_httpx_error(cls.__new__(cls), "POST http://127.0.0.1:1/v1/chat/completions")
    assert isinstance(error, GenerationError)
    assert error.payload.type == "generation_error"
    assert "(POST http://127.0.0.1:1/v1/chat/completions)" in str(error)
