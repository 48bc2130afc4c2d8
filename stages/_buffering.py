"""The buffering stage: tokens in, rail windows out (SPEC, "Token windows").

With chunk size N and context C, window 1 is tokens 1..N; each later window starts with the
last C tokens of the one before and adds up to N-C new tokens; at the end, the tokens no
window has held yet form one last, shorter window. No window adds no new token.
"""

from __future__ import annotations

import array
import bisect
from collections.abc import Sequence
from itertools import repeat
from operator import sub

import trio

from ._flow import hand_on
from ._messages import (
    BufferEvent,
    EndOfTokens,
    GenerationEnded,
    GenerationEvent,
    GenerationFailed,
    Passthrough,
    TokenBatch,
    Window,
    token_ends,
)

__all__ = ["WindowBuffer", "run_buffering"]


class WindowBuffer:
    """Cuts a token stream into windows; pure, so the window geometry can be tested alone.

    What a window will hold is kept as text pieces (one per push) and each token's end offset,
    not a string per token: a Python string costs about 50 bytes on top of its characters,
    more than a typical token's text, and a stream keeps up to a window of them.
    """

    def __init__(self, chunk_size: int, context_size: int) -> None:
        if chunk_size < 1 or not 0 <= context_size < chunk_size:
            raise ValueError(
                f"need chunk_size >= 1 and 0 <= context_size < chunk_size, got {chunk_size}, {context_size}"
            )
        self._size = chunk_size
        self._context = context_size
        self._pieces: list[str] = []  # the pending tokens' text, joined when a window is cut
        self._ends = array.array("I")  # where each pending token ends in that text
        self._context_len = 0  # how many of the pending tokens came from the previous window
        self._start = 0  # stream position of the first pending token
        self._index = 0
        # When the pending tokens arrived, one entry per push (per batch, not per token): the
        # first token of a push at _positions[i] arrived at _times[i]. Compact arrays: a held
        # stream keeps one window's worth.
        self._positions = array.array("q")
        self._times = array.array("d")

    def _arrival(self, position: int) -> float | None:
        i = bisect.bisect_right(self._positions, position) - 1
        return self._times[i] if i >= 0 else None

    def _cut(self) -> Window:
        ends, keep = self._ends, self._context
        start, end = self._start, self._start + len(ends)
        arrivals: tuple[tuple[int, float], ...] = ()
        if self._times:
            # What the rails stage releases of a window begins at its start and ends before its
            # context tail (end - keep), or, at the end, runs from the tail to the last token:
            # the arrivals of those four tokens are the chunks' oldest and newest.
            wanted = sorted({p for p in (start, end - keep - 1, end - keep, end - 1) if p >= start})
            arrivals = tuple((p, at) for p in wanted if (at := self._arrival(p)) is not None)
        pieces = self._pieces
        text = pieces[0] if len(pieces) == 1 else "".join(pieces)
        window = Window(
            index=self._index,
            text=text,
            ends=ends,
            context_len=self._context_len,
            start=start,
            arrivals=arrivals,
        )
        self._index += 1
        self._start = end - keep
        # The next window begins with this one's last ``keep`` tokens.
        kept_from = ends[len(ends) - keep - 1] if len(ends) > keep else 0
        self._pieces = [text[kept_from:]] if keep else []
        self._ends = array.array("I", map(sub, ends[len(ends) - keep :], repeat(kept_from)))
        self._context_len = keep
        # Forget the arrivals of tokens no later window holds (the push covering the new start
        # stays: it may have begun before it).
        drop = bisect.bisect_right(self._positions, self._start) - 1
        if drop > 0:
            del self._positions[:drop]
            del self._times[:drop]
        return window

    def push(
        self,
        tokens: Sequence[str],
        oldest_at: float | None = None,
        newest_at: float | None = None,
        text: str | None = None,
    ) -> list[Window]:
        """Add tokens, the first arrived ``oldest_at`` and the last ``newest_at`` (those between
        are taken as old as the first: an age is never understated); return the windows they
        fill (often none). ``text``: the tokens already joined, if the caller has it."""
        windows: list[Window] = []
        if oldest_at is not None:
            first = self._start + len(self._ends)
            self._positions.append(first)
            self._times.append(oldest_at)
            if newest_at is not None and newest_at != oldest_at and len(tokens) > 1:
                self._positions.append(first + len(tokens) - 1)
                self._times.append(newest_at)
        taken, count = 0, len(tokens)
        while taken < count:
            ends = self._ends
            room = self._size - len(ends)
            if taken == 0 and count <= room:
                part: Sequence[str] = tokens  # the common case: the whole push fits
            else:
                part = tokens[taken : taken + room]
                text = None
            base = ends[-1] if ends else 0
            if len(part) == 1:
                ends.append(base + len(part[0]))  # a token per push is common: no iterator
            else:
                ends.extend(token_ends(part, base))
            self._pieces.append(text if text is not None else "".join(part))
            taken += len(part)
            if len(ends) == self._size:
                windows.append(self._cut())
        return windows

    def finish(self) -> Window | None:
        """The last, shorter window, if any token has not been in a window yet."""
        if len(self._ends) > self._context_len:
            return self._cut()
        return None


async def run_buffering(
    inbox: trio.MemoryReceiveChannel[GenerationEvent],
    outbox: trio.MemorySendChannel[BufferEvent],
    *,
    buffer: WindowBuffer | None,
    stream_first: bool,
) -> None:
    """Turn the token stream into windows for the rails stage.

    With ``stream_first`` (or no rails, ``buffer`` None) tokens are also passed on at once,
    ahead of their window, so the consumer sees them without waiting for checks.
    """
    with inbox, outbox:
        try:
            await _cut_windows(inbox, outbox, buffer, stream_first)
        except trio.BrokenResourceError:
            pass  # the rails stage has finished (a block, or the consumer left): so are we


def _coalesce(
    inbox: trio.MemoryReceiveChannel[GenerationEvent], batch: TokenBatch
) -> tuple[tuple[str, ...], float | None, GenerationEvent]:
    """The tokens of ``batch`` and of the batches queued behind it, when the last of them
    arrived, and the first other event found there (or ``batch`` itself if there is none)."""
    tokens = batch.tokens
    at = batch.at
    while True:
        try:
            queued = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return tokens, at, batch
        if not isinstance(queued, TokenBatch):
            return tokens, at, queued
        tokens += queued.tokens
        at = queued.at


async def _cut_windows(
    inbox: trio.MemoryReceiveChannel[GenerationEvent],
    outbox: trio.MemorySendChannel[BufferEvent],
    buffer: WindowBuffer | None,
    stream_first: bool,
) -> None:
    async for first in inbox:
        event: GenerationEvent = first
        if isinstance(event, TokenBatch):
            # Take every batch already waiting too: under load, fewer and larger messages
            # move on, so the cost per token falls as the rate rises; when idle, nothing waits.
            oldest_at = event.at
            tokens, newest_at, event = _coalesce(inbox, event)
            text = None
            if stream_first or buffer is None:
                text = "".join(tokens)  # once: the window shares it
                await hand_on(outbox, Passthrough(text, oldest_at, newest_at))
            if buffer is not None:
                # Released ahead of their windows (stream_first), their arrivals are the
                # passthrough's; held, the windows carry them to the release.
                held = not stream_first
                for window in buffer.push(
                    tokens, oldest_at if held else None, newest_at if held else None, text
                ):
                    await hand_on(outbox, window)
            if isinstance(event, TokenBatch):
                continue
        last = buffer.finish() if buffer is not None else None
        if last is not None:
            await outbox.send(last)
        if isinstance(event, GenerationEnded):
            await outbox.send(EndOfTokens(event.finish_reason, tool_calls=event.tool_calls))
        elif isinstance(event, GenerationFailed):
            await outbox.send(EndOfTokens("error", event.error, event.cause))
        return
