"""``StreamingHandler``: the deprecated way to stream, kept for NeMo Guardrails' examples.

Output rails apply to what it yields exactly as to ``stream_async``. Prefer ``stream_async``.
"""

from __future__ import annotations

import warnings

import trio

from .asyncio_bridge import AsyncioBridge, in_asyncio

__all__ = ["StreamingHandler"]


class StreamingHandler:
    """Chunks of a ``generate_async(..., streaming_handler=handler)`` call, as they pass the rails.

    Its buffer is bounded: the reply waits for a consumer, so iterate the handler in a
    concurrent task (as the seed examples do) while ``generate_async`` runs.
    """

    def __init__(self, *, buffer_size: int = 32) -> None:
        warnings.warn(
            "StreamingHandler is deprecated; use LLMRails.stream_async() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self._send, self._receive = trio.open_memory_channel[str](buffer_size)

    def __aiter__(self) -> StreamingHandler:
        return self

    async def __anext__(self) -> str:
        if in_asyncio():
            chunk = await (await AsyncioBridge.get()).call(self._next_or_end)
        else:
            chunk = await self._next_or_end()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def _next_or_end(self) -> str | None:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return None

    async def push_chunk(self, chunk: str) -> None:
        """Hand on a chunk; waits while the consumer is behind."""
        await self._send.send(chunk)

    def close(self) -> None:
        """No more chunks: the consumer's iteration ends."""
        self._send.close()
