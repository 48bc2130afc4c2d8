"""``generator=``: a caller's async iterator of strings used in place of the model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from .._errors import GenerationError
from .._usercode import CLEANUP_GRACE_S, TrioUserCode, UserCode
from ._base import (
    ChatProvider,
    ChatRequest,
    Completion,
    Emit,
    ProviderOutcome,
)

__all__ = ["IteratorProvider", "WholeReply"]


class IteratorProvider:
    """Streams what the caller's iterator yields; usage is unknown (None), never made up.

    The iterator is the application's: each step of it runs on the application's event loop
    (``host``), so a generator that awaits asyncio code works from asyncio.
    """

    def __init__(self, iterator: AsyncIterator[str], host: UserCode | None = None) -> None:
        self._iterator = iterator
        self._host = host or TrioUserCode()

    @property
    def provider_name(self) -> str:
        return "generator"

    @property
    def model_name(self) -> str | None:
        return None

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        iterator, host = self._iterator, self._host
        try:
            while True:
                try:
                    piece = await host.run_async(iterator.__anext__)
                except StopAsyncIteration:
                    break
                if not isinstance(piece, str):
                    raise GenerationError(f"generator yielded {type(piece).__name__}, expected str")
                await emit((piece,))
        finally:
            # Stop the caller's generator now, not whenever it is garbage collected; even when
            # cancelled (a block), its cleanup runs, within a grace that no hang can outlast.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                    await host.run_async(aclose)
        return ProviderOutcome()

    async def complete(self, request: ChatRequest) -> Completion:
        raise GenerationError("a generator= stream cannot serve a whole-reply call")


class WholeReply:
    """A provider's whole-reply call, seen as a stream of one piece.

    ``generate()`` without a streaming handler asks the model for no streaming (a plain
    request) and checks the whole reply at once; this lets that run through the same pipeline.
    """

    def __init__(self, provider: ChatProvider) -> None:
        self._provider = provider

    @property
    def provider_name(self) -> str:
        return self._provider.provider_name

    @property
    def model_name(self) -> str | None:
        return self._provider.model_name

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        completion = await self._provider.complete(request)
        if completion.text:
            await emit((completion.text,))
        return ProviderOutcome(
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            tool_calls=completion.tool_calls,
        )

    async def complete(self, request: ChatRequest) -> Completion:
        return await self._provider.complete(request)
