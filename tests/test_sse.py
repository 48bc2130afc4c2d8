"""The SSE decoder: exact on real servers' output, whatever the read boundaries."""

from __future__ import annotations

import inspect

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import GenerationError
from stages.generation.http_errors import HTTPX_ERRORS, map_httpx_error
from stages.generation.sse import SSEDecoder, SSEEvent


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
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
