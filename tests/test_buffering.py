"""The token windows of SPEC, on the pure WindowBuffer: unit tests and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railstream.stages._buffering import WindowBuffer
from railstream.stages._messages import Window

from .strategies import batches, distinct_tokens, geometry


def cut(
    tokens: list[str], chunk: int, context: int, split: list[list[str]] | None = None
) -> list[Window]:
    buffer = WindowBuffer(chunk, context)
    windows: list[Window] = []
    for batch in split if split is not None else [tokens]:
        windows += buffer.push(batch)
    last = buffer.finish()
    return windows + ([last] if last is not None else [])


def test_windows_for_chunk_4_context_1() -> None:
    tokens = [f"{i}" for i in range(1, 10)]
    windows = cut(tokens, 4, 1)
    assert [w.tokens for w in windows] == [
        ("1", "2", "3", "4"),
        ("4", "5", "6", "7"),
        ("7", "8", "9"),
    ]
    assert [w.context_len for w in windows] == [0, 1, 1]
    assert [w.start for w in windows] == [0, 3, 6]


def test_stream_ending_on_a_window_boundary_adds_no_context_only_window() -> None:
    assert [w.tokens for w in cut(["a", "b", "c", "d", "e", "f", "g"], 4, 1)] == [
        ("a", "b", "c", "d"),
        ("d", "e", "f", "g"),
    ]


def test_short_stream_is_one_window_without_context() -> None:
    windows = cut(["a", "b"], 200, 50)
    assert [(w.tokens, w.context_len) for w in windows] == [(("a", "b"), 0)]


def test_empty_stream_has_no_window() -> None:
    assert cut([], 3, 1) == []


@pytest.mark.parametrize(("chunk", "context"), [(0, 0), (3, 3), (3, -1)])
def test_impossible_geometry_is_refused(chunk: int, context: int) -> None:
    with pytest.raises(ValueError, match=r"^need chunk_size >= 1"):
        WindowBuffer(chunk, context)


@given(st.data(), distinct_tokens(), geometry())
def test_window_geometry_is_exact_whatever_the_batching(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int]
) -> None:
    """Window 1 is tokens 1..N; each later window starts with the previous one's last C tokens
    and adds up to N-C new ones; no window exceeds N; the result does not depend on batching."""
    chunk, context = geo
    split = data.draw(batches(tokens))
    windows = cut(tokens, chunk, context, split)
    assert windows == cut(tokens, chunk, context)
    for k, window in enumerate(windows):
        assert window.index == k
        assert len(window.tokens) <= chunk
        assert window.tokens == tuple(tokens[window.start : window.end])
        if k == 0:
            assert window.start == 0
            assert window.context_len == 0
        else:
            previous = windows[k - 1]
            assert window.context_len == context
            assert window.start == previous.end - context
            assert window.tokens[:context] == previous.tokens[len(previous.tokens) - context :]
        if k < len(windows) - 1:
            assert len(window.tokens) == chunk  # only the last window may be short


@given(distinct_tokens(), geometry())
def test_no_window_adds_no_new_token(tokens: list[str], geo: tuple[int, int]) -> None:
    """Every window holds at least one token that no earlier window held."""
    for window in cut(tokens, *geo):
        assert len(window.tokens) > window.context_len


@given(distinct_tokens(), geometry())
def test_every_token_is_new_in_exactly_one_window(tokens: list[str], geo: tuple[int, int]) -> None:
    """The new (non-context) parts of the windows, in order, are the whole stream."""
    new: list[str] = []
    for window in cut(tokens, *geo):
        new += window.tokens[window.context_len :]
    assert new == tokens


@given(st.data(), distinct_tokens(min_size=1), geometry())
def test_any_span_of_at_most_context_plus_one_tokens_lies_whole_in_a_window(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int]
) -> None:
    """Any text spanning at most C+1 tokens lies whole inside at least one window (final included)."""
    chunk, context = geo
    length = data.draw(st.integers(min_value=1, max_value=min(context + 1, len(tokens))))
    start = data.draw(st.integers(min_value=0, max_value=len(tokens) - length))
    windows = cut(tokens, chunk, context)
    assert any(w.start <= start and start + length <= w.end for w in windows)


@given(
    st.data(),
    st.lists(st.text(min_size=1, max_size=4), max_size=60),
    geometry(),
    st.booleans(),
)
def test_a_windows_text_is_its_tokens_joined_and_each_token_is_its_own_slice(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int], joined_by_caller: bool
) -> None:
    """A window keeps one text and where each token ends in it: its text is exactly its tokens
    joined, the text between two stream positions is the tokens between them, whatever the
    batching, and whether or not the caller hands in each batch's text already joined."""
    chunk, context = geo
    buffer = WindowBuffer(chunk, context)
    windows: list[Window] = []
    for batch in data.draw(batches(tokens)):
        windows += buffer.push(batch, text="".join(batch) if joined_by_caller else None)
    last = buffer.finish()
    windows += [last] if last is not None else []
    for window in windows:
        assert window.tokens == tuple(tokens[window.start : window.end])
        assert window.text == "".join(tokens[window.start : window.end])
        first = data.draw(st.integers(min_value=window.start, max_value=window.end))
        upto = data.draw(st.integers(min_value=first, max_value=window.end))
        assert window.text_between(first, upto) == "".join(tokens[first:upto])
