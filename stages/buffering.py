"""The buffering stage: tokens in, rail windows out (SPEC, "Token windows").

With chunk size N and context C, window 1 is tokens 1..N; each later window starts with the
last C tokens of the one before and adds up to N-C new tokens; at the end, the tokens no
window has held yet form one last, shorter window. No window adds no new token.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

from engine.messages import (
    BufferEvent,
    EndOfTokens,
    GenerationEnded,
    GenerationEvent,
    GenerationFailed,
    Passthrough,
    TokenBatch,
    Window,
)
from stages.flow import hand_on

__all__ = ["WindowBuffer", "run_buffering"]


class WindowBuffer:
    """Cuts a token stream into windows; pure, so the window geometry can be tested alone."""

    def __init__(self, chunk_size: int, context_size: int) -> None:
        if chunk_size < 1 or not 0 <= context_size < chunk_size:
            raise ValueError(
                f"need chunk_size >= 1 and 0 <= context_size < chunk_size, got {chunk_size}, {context_size}"
            )
        self._size = chunk_size
        self._context = context_size
        self._pending: list[str] = []
        self._context_len = 0  # how many of _pending came from the previous window
        self._start = 0  # stream position of _pending[0]
        self._index = 0

    def _cut(self) -> Window:
        window = Window(
            index=self._index,
            tokens=tuple(self._pending),
            context_len=self._context_len,
            start=self._start,
        )
        self._index += 1
        keep = self._context
        self._start = window.end - keep
        self._pending = self._pending[len(self._pending) - keep :] if keep else []
        self._context_len = keep
        return window

    def push(self, tokens: Iterable[str]) -> list[Window]:
        """Add tokens; return the windows they fill (often none)."""
        windows: list[Window] = []
        pending = self._pending
        for token in tokens:
            pending.append(token)
            if len(pending) == self._size:
                windows.append(self._cut())
                pending = self._pending
        return windows

    def finish(self) -> Window | None:
        """The last, shorter window, if any token has not been in a window yet."""
        if len(self._pending) > self._context_len:
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
) -> tuple[tuple[str, ...], GenerationEvent]:
    """The tokens of ``batch`` and of the batches queued behind it, and the first other event
    found there (or ``batch`` itself if there is none)."""
    tokens = batch.tokens
    while True:
        try:
            queued = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return tokens, batch
        if not isinstance(queued, TokenBatch):
            return tokens, queued
        tokens += queued.tokens


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
            tokens, event = _coalesce(inbox, event)
            if stream_first or buffer is None:
                await hand_on(outbox, Passthrough(tokens))
            if buffer is not None:
                for window in buffer.push(tokens):
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
