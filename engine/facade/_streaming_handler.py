"""``StreamingHandler``: the deprecated way to stream, kept for NeMo Guardrails' examples.

Output rails apply to what it yields exactly as to ``stream_async``. Prefer ``stream_async``.

Of NeMo's handler, railstream has what an application can use around output rails:
``push_chunk`` (a ``str``, or ``None`` / ``""`` for the end), ``enable_print``,
``include_generation_metadata``, ``set_pattern``, ``set_pipe_to``, ``wait`` and
``completion``. Not here, because they serve NeMo's dialog generation: ``enable_buffer`` and
``wait_top_k_nonempty_lines`` (reading bot intents line by line) and ``stop`` (its stop tokens
for bot messages); setting them is an error, never silently nothing.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from typing import Any

import trio

from ._asyncio_bridge import AsyncioBridge, in_asyncio

__all__ = ["StreamingHandler"]

_END = object()


class StreamingHandler:
    """Chunks of a ``generate_async(..., streaming_handler=handler)`` call, as they pass the rails.

    Its buffer is bounded: the reply waits for a consumer, so iterate the handler in a
    concurrent task (as the seed examples do) while ``generate_async`` runs; once a consumer
    has started, ``generate_async`` returns only after it has had the whole reply. With
    ``include_generation_metadata``, chunks are dicts: ``{"text": ..., "generation_info": {...}}``.
    """

    def __init__(
        self,
        enable_print: bool = False,
        enable_buffer: bool = False,
        include_generation_metadata: bool = False,
        *,
        buffer_size: int = 32,
    ) -> None:
        warnings.warn(
            "StreamingHandler is deprecated; use LLMRails.stream_async() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        if enable_buffer:
            raise ValueError(
                "StreamingHandler(enable_buffer=True) serves NeMo's dialog generation "
                "(wait_top_k_nonempty_lines), which railstream does not have"
            )
        self.enable_print = enable_print
        self.include_generation_metadata = include_generation_metadata
        self.completion = ""
        """The text handed on so far (after ``set_pattern``'s prefix and suffix are removed)."""
        self.prefix: str | None = None
        self.suffix: str | None = None
        self.pipe_to: StreamingHandler | None = None
        self._held = ""  # text that may still turn out to be the prefix or the suffix
        self._send, self._receive = trio.open_memory_channel[Any](buffer_size)
        self._finished = trio.Event()
        self._reading = False  # a consumer has started iterating
        self._drained = trio.Event()  # ... and has come to the end

    # NeMo's stop tokens cut its bot-message generation; here they would silently do nothing.
    @property
    def stop(self) -> list[str]:
        return []

    @stop.setter
    def stop(self, tokens: list[str]) -> None:
        raise AttributeError(
            "StreamingHandler.stop (NeMo's stop tokens for its bot messages) is not supported: "
            "give the main model stop sequences instead (models[].parameters.stop, or "
            'options={"llm_params": {"stop": [...]}})'
        )

    def set_pattern(self, prefix: str | None = None, suffix: str | None = None) -> None:
        """Remove ``prefix`` from the start of the text and ``suffix`` from its end, if there."""
        self.prefix = prefix or None
        self.suffix = suffix or None

    def set_pipe_to(self, another_handler: StreamingHandler) -> None:
        """Hand every chunk (and the end) on to ``another_handler`` instead of this one's
        consumer."""
        self.pipe_to = another_handler

    async def wait(self) -> str:
        """Wait until the stream ends; the whole completion."""
        if in_asyncio():
            await (await AsyncioBridge.get()).call(self._finished.wait)
        else:
            await self._finished.wait()
        return self.completion

    def __aiter__(self) -> StreamingHandler:
        return self

    async def __anext__(self) -> Any:
        if in_asyncio():
            chunk = await (await AsyncioBridge.get()).call(self._next_or_end)
        else:
            chunk = await self._next_or_end()
        if chunk is _END:
            raise StopAsyncIteration
        return chunk

    async def _next_or_end(self) -> Any:
        self._reading = True
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            self._drained.set()
            return _END

    async def push_chunk(
        self, chunk: str | None, generation_info: Mapping[str, Any] | None = None
    ) -> None:
        """Hand on a chunk (``None`` or ``""``: the end); waits while the consumer is behind."""
        if chunk is not None and not isinstance(chunk, str):
            raise TypeError(
                f"push_chunk takes a str (or None for the end), got {type(chunk).__name__}"
            )
        if in_asyncio():
            await (await AsyncioBridge.get()).call(self._push, chunk, generation_info)
        else:
            await self._push(chunk, generation_info)

    async def _push(self, chunk: str | None, generation_info: Mapping[str, Any] | None) -> None:
        if not chunk:
            await self._end()
            return
        text = self._held + chunk
        self._held = ""
        if self.prefix is not None:
            if self.prefix.startswith(text) and text != self.prefix:
                self._held = text  # may still be the prefix: wait for more
                return
            if text.startswith(self.prefix):
                text = text[len(self.prefix) :]
            self.prefix = None  # found and removed, or not there: either way, done with it
        if self.suffix is not None:
            # The end may be the suffix: hold back as much as it is long.
            text, self._held = text[: -len(self.suffix)], text[-len(self.suffix) :]
        if text:
            await self._hand_on(text, generation_info)

    async def _end(self) -> None:
        text, self._held = self._held, ""
        if self.suffix is not None and text.endswith(self.suffix):
            text = text[: -len(self.suffix)]
        if text:
            await self._hand_on(text, None)
        self.close()
        reader = self
        while reader.pipe_to is not None:
            reader = reader.pipe_to  # the handler whose consumer gets the chunks
        if reader._reading:
            # The reply is over once its consumer has had all of it: an asyncio application
            # whose main() returns when generate_async does (asyncio.run then cancels the
            # consumer task) must not lose the chunks still in the buffer. Without a consumer
            # (a handler read by wait() or .completion alone) there is nobody to wait for.
            await reader._drained.wait()

    async def _hand_on(self, text: str, generation_info: Mapping[str, Any] | None) -> None:
        self.completion += text
        if self.pipe_to is not None:
            await self.pipe_to.push_chunk(text, generation_info)
            return
        if self.enable_print:
            print(text, end="", flush=True, file=sys.stdout)
        if self.include_generation_metadata:
            await self._send.send({"text": text, "generation_info": dict(generation_info or {})})
        else:
            await self._send.send(text)

    def close(self) -> None:
        """No more chunks: the consumer's iteration ends (and a piped handler's)."""
        if self._finished.is_set():
            return
        self._finished.set()
        self._send.close()
        if self.pipe_to is not None:
            self.pipe_to.close()
