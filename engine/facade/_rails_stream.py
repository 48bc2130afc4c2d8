"""The object ``stream_async`` returns: an async iterator over a running pipeline.

The pipeline's life is bound to its consumer's, never longer (structured concurrency):

- ``async with rails.stream_async(...) as stream:`` (trio): the pipeline runs in a nursery of
  the caller's, opened on entry and closed on exit. Whatever cancels the caller (a timeout, a
  sibling's failure, Ctrl-C) cancels the pipeline at once, between chunks too.
- ``async for chunk in rails.stream_async(...)`` with no ``async with``: there is no scope of the
  caller's to run in, so the pipeline runs as a system task bound to the task that started
  iterating it: it is cancelled when the stream is closed (``aclose()``), when that task is
  cancelled while it waits for a chunk, when the stream is dropped (``break``), and when that
  task ends, however it ends; under asyncio, when that asyncio task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import attrs
import trio

from railstream.runtime import Pipeline, PipelineStatistics
from railstream.stages import (
    OutputEvent,
    Released,
    StreamEnded,
    StreamError,
    StreamFailed,
    StreamStateError,
)

from ._asyncio_bridge import AsyncioBridge, in_asyncio
from ._generation_log import GenerationLog

__all__ = ["ChunkLatency", "RailsStream", "StreamState"]

Chunk = str | dict[str, Any]

_END = object()  # the end of a stream, as it crosses from trio to asyncio

_CLOSED_UNDER_READER = "this stream was closed while it was being read: the reply is incomplete"


class StreamState(enum.Enum):
    NEW = "new"  # nothing started yet
    OPEN = "open"  # the pipeline is running
    ENDED = "ended"  # the last event arrived; only a metadata chunk may remain
    CLOSED = "closed"  # closed by the consumer, or its consumer was cancelled; final


def _unwrap(exc: BaseException) -> BaseException:
    """A lone exception out of nested nurseries, rather than groups of one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class _Runner:
    """Runs a stream's pipeline, in the caller's nursery or as a system task.

    Kept apart from the stream on purpose: the task holds the runner, never the stream, so a
    dropped stream is collected at once and its ``__del__`` can cancel the pipeline.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.done = trio.Event()
        self.crash: BaseException | None = None
        self._unbind: Callable[[], None] | None = None

    def start_in(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._run, name="railstream.pipeline")

    def start_bound_to(self, consumer: trio.lowlevel.Task | asyncio.Task[Any]) -> None:
        """A system task, cancelled when ``consumer`` ends (trio task or asyncio task)."""
        if isinstance(consumer, trio.lowlevel.Task):
            self._unbind = _ConsumerWatch.get().watch(consumer, self.pipeline.cancel)
        else:
            token = trio.lowlevel.current_trio_token()
            cancel = self.pipeline.cancel

            def on_done(_: object) -> None:
                token.run_sync_soon(cancel)

            consumer.add_done_callback(on_done)

            # Guest mode: trio runs on the loop's own thread, so this may touch the task.
            def unbind() -> None:
                consumer.remove_done_callback(on_done)

            self._unbind = unbind
        trio.lowlevel.spawn_system_task(self._run, name="railstream.pipeline")

    async def _run(self) -> None:
        try:
            await self.pipeline.run()
        except Exception as exc:
            # Handed to the consumer, which re-raises it from __anext__.
            self.crash = _unwrap(exc)
        finally:
            if self._unbind is not None:
                self._unbind()  # a long-lived consumer must not collect one hook per stream
            self.done.set()


class _ConsumerWatch(trio.abc.Instrument):
    """Cancels the pipelines of a task when it exits: one instrument per trio run.

    trio has no public "when this task ends" hook but its instruments; only ``task_exited``
    is defined, so trio calls nothing else of this one.
    """

    _RUN_VAR: trio.lowlevel.RunVar[_ConsumerWatch] = trio.lowlevel.RunVar("railstream_watch")

    def __init__(self) -> None:
        self._cancels: dict[trio.lowlevel.Task, list[Callable[[], None]]] = {}
        self._token = trio.lowlevel.current_trio_token()

    @classmethod
    def get(cls) -> _ConsumerWatch:
        try:
            return cls._RUN_VAR.get()
        except LookupError:
            watch = cls()
            trio.lowlevel.add_instrument(watch)
            cls._RUN_VAR.set(watch)
            return watch

    def watch(self, task: trio.lowlevel.Task, cancel: Callable[[], None]) -> Callable[[], None]:
        """Call ``cancel`` when ``task`` exits; the returned function undoes this."""
        self._cancels.setdefault(task, []).append(cancel)

        def unwatch() -> None:
            cancels = self._cancels.get(task)
            if cancels is not None and cancel in cancels:
                cancels.remove(cancel)
                if not cancels:
                    del self._cancels[task]

        return unwatch

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        for cancel in self._cancels.pop(task, ()):
            # Not from inside the instrument hook: at the next turn of the run loop.
            self._token.run_sync_soon(cancel)


@attrs.frozen
class ChunkLatency:
    """A text chunk's time inside railstream, in seconds: since its oldest and its newest
    token arrived from the model (a held window's oldest token waited for the whole window)."""

    oldest_s: float
    newest_s: float


class RailsStream:
    """Guarded chunks of one reply: ``async for chunk in stream``; ``stream.log`` after it ends.

    Chunks are strings (errors as their JSON); with ``include_metadata`` they are dicts:
    ``{"text": ...}``, ``{"error": {...}}``, and last ``{"finish_reason": ..., "usage": ...}``.
    """

    def __init__(self, pipeline: Pipeline, *, include_metadata: bool = False) -> None:
        self._pipeline = pipeline
        self._runner = _Runner(pipeline)
        self._done = self._runner.done
        self._include_metadata = include_metadata
        self._state = StreamState.NEW
        self._finish_reason: str | None = None
        self._tool_calls: tuple[dict[str, Any], ...] = ()
        self._error_cause: Exception | None = None
        self._metadata_due = False
        self._held: OutputEvent | None = None  # taken from the channel ahead of its turn
        # When the last text chunk's first and last tokens arrived from the model (trio's clock).
        self._chunk_arrivals: tuple[float | None, float | None] = (None, None)
        self._bridge: AsyncioBridge | None = None  # set when iterated from asyncio
        self._asyncio_consumer: asyncio.Task[Any] | None = None
        # ``async with`` under trio: the caller's nursery that the pipeline runs in.
        self._nursery_manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def error_cause(self) -> Exception | None:
        """The exception behind the error chunk, once it is out: the provider's own
        (``DownstreamError`` with its status and ``retry_after_s``, ``ProviderTimeoutError``,
        ...), so a caller can tell a 429 from a refused connection. None for a block."""
        return self._error_cause

    def statistics(self) -> PipelineStatistics:
        return self._pipeline.statistics()

    def last_chunk_latency(self) -> ChunkLatency | None:
        """How long ago, now, the oldest and the newest token of the text chunk just handed over
        arrived from the model: the chunk's time inside railstream (held for its windows'
        checks, or waiting for a slow consumer). None before a text chunk, and for text the
        model did not write (a refusal). Call it right after the chunk (from trio or asyncio)."""
        oldest_at, newest_at = self._chunk_arrivals
        if oldest_at is None or newest_at is None:
            return None
        now = trio.current_time()  # from asyncio too: the guest run is this thread's
        return ChunkLatency(oldest_s=now - oldest_at, newest_s=now - newest_at)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The reply's tool calls, whole (OpenAI's ``message.tool_calls`` shape), once it has
        ended with every window passed; empty before, after a block, and when there are none.
        With ``include_metadata`` the last dict carries them too."""
        return [dict(call) for call in self._tool_calls]

    @property
    def log(self) -> GenerationLog:
        """The generation log: LLM calls (with usage) and rail runs. Ready once the stream ends."""
        if not self._done.is_set():
            raise StreamStateError("the log is ready once the stream has ended or been closed")
        return GenerationLog.from_ledger(self._pipeline.ledger)

    def __aiter__(self) -> RailsStream:
        return self

    async def __aenter__(self) -> RailsStream:
        if self._state is StreamState.NEW and not in_asyncio():
            # Structured: the pipeline's tasks are children of a nursery in the caller's task,
            # inside the caller's cancel scopes; nothing of it can outlive this block.
            self._check_trio()
            manager = trio.open_nursery()
            nursery = await manager.__aenter__()
            self._nursery_manager = manager
            self._state = StreamState.OPEN
            self._runner.start_in(nursery)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            manager, self._nursery_manager = self._nursery_manager, None
            if manager is not None:
                # The pipeline has finished (aclose waited for it), so this only closes the
                # nursery. The block's own exception is not handed in: it propagates as it
                # is, not wrapped in an exception group by the nursery.
                await manager.__aexit__(None, None, None)

    async def __anext__(self) -> Chunk:
        if in_asyncio():
            # From asyncio: the same logic, run in railstream's trio guest run on this loop.
            if self._state is StreamState.NEW:
                self._asyncio_consumer = asyncio.current_task()
            self._bridge = await AsyncioBridge.get()
            chunk = await self._bridge.call(self._next_or_end)
            if chunk is _END:
                raise StopAsyncIteration
            return cast(Chunk, chunk)
        return await self._next_in_trio()

    async def _next_or_end(self) -> Chunk | object:
        # An asyncio future cannot carry StopAsyncIteration: the end crosses as a sentinel.
        try:
            return await self._next_in_trio()
        except StopAsyncIteration:
            return _END

    async def _next_in_trio(self) -> Chunk:
        if self._state is StreamState.CLOSED:
            raise StreamStateError("this stream is closed")
        if self._state is StreamState.ENDED:
            if self._metadata_due:
                self._metadata_due = False
                return self._metadata()
            raise StopAsyncIteration
        if self._state is StreamState.NEW:
            self._start()
        event: OutputEvent | None
        if self._held is not None:
            event, self._held = self._held, None
        else:
            try:
                event = await self._pipeline.output.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                event = None
            except BaseException:
                # Cancelled (or interrupted) while waiting: the consumer is gone, so is the stream.
                self._close_now()
                raise
        if isinstance(event, Released):
            if self._closed_meanwhile():
                raise StreamStateError(_CLOSED_UNDER_READER)
            text = self._with_queued_text(event)
            return {"text": text} if self._include_metadata else text
        await self._wait_done()
        if event is None and self._runner.crash is None:
            # The pipeline stopped without its last event: cancelled under this reader (a
            # concurrent aclose(), the bound task ending). Never a normal end: the reply is cut.
            self._state = StreamState.CLOSED
            raise StreamStateError(_CLOSED_UNDER_READER)
        if not self._closed_meanwhile():
            self._state = StreamState.ENDED
        if isinstance(event, StreamFailed):
            self._finish_reason = event.finish_reason
            self._error_cause = event.cause
            self._metadata_due = self._include_metadata
            return self._error_chunk(event.error)
        if isinstance(event, StreamEnded):
            self._finish_reason = event.finish_reason
            self._tool_calls = event.tool_calls
            if self._include_metadata:
                return self._metadata()
        if self._runner.crash is not None:
            raise self._runner.crash
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the stream and its generation; idempotent. Returns once nothing runs for it."""
        if in_asyncio():
            await (await AsyncioBridge.get()).call(self._aclose_in_trio)
        else:
            await self._aclose_in_trio()

    async def _aclose_in_trio(self) -> None:
        if self._state is StreamState.CLOSED:
            return
        started = self._state is not StreamState.NEW
        self._state = StreamState.CLOSED
        self._pipeline.cancel()
        if started:
            # Even a cancelled caller gets a closed stream: the wait is short, as all is cancelled.
            with trio.CancelScope(shield=True):
                await self._done.wait()
        else:
            self._done.set()
        self._pipeline.output.close()

    def __del__(self) -> None:
        # `break` out of `async for chunk in rails.stream_async(...)` drops the last reference
        # here: stop generating at once rather than when the lookahead fills.
        if self._state is StreamState.OPEN and not self._done.is_set():
            if self._bridge is not None:
                self._bridge.run_sync_soon(self._pipeline.cancel)
                return
            try:
                self._pipeline.cancel()
            except RuntimeError:  # pragma: no cover - collected outside the trio thread
                pass

    # internals

    def _closed_meanwhile(self) -> bool:
        # A separate method: the state may change while this reader awaits (a concurrent
        # aclose), which a type checker's narrowing of self._state cannot see.
        return self._state is StreamState.CLOSED

    @staticmethod
    def _check_trio() -> None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise StreamStateError(
                "railstream streams run under trio; iterate this stream inside trio.run(...)"
            ) from None

    def _start(self) -> None:
        self._check_trio()
        self._state = StreamState.OPEN
        # A system task: `async for` gives the pipeline no nursery of the caller's to live in.
        # It is bound to the consumer's task (see the module docstring).
        consumer = self._asyncio_consumer or trio.lowlevel.current_task()
        self._runner.start_bound_to(consumer)

    async def _wait_done(self) -> None:
        try:
            await self._done.wait()
        except BaseException:
            self._close_now()
            raise

    def _close_now(self) -> None:
        self._state = StreamState.CLOSED
        self._pipeline.cancel()

    def _with_queued_text(self, released: Released) -> str:
        """The text of ``released`` and of the released text queued behind it: a consumer that
        fell behind catches up in one chunk. Any other event waits for the next call."""
        output = self._pipeline.output
        text = released.text
        parts = [text]
        newest_at = released.newest_at
        while True:
            try:
                queued = output.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if not isinstance(queued, Released):
                self._held = queued
                break
            parts.append(queued.text)
            newest_at = queued.newest_at
        self._chunk_arrivals = (released.oldest_at, newest_at)
        return "".join(parts) if len(parts) > 1 else text

    def _error_chunk(self, error: StreamError) -> Chunk:
        return error.to_dict() if self._include_metadata else error.to_json()

    def _metadata(self) -> dict[str, Any]:
        usage = self._pipeline.ledger.main_usage()
        metadata: dict[str, Any] = {
            "finish_reason": self._finish_reason,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        if self._tool_calls:
            metadata["tool_calls"] = self.tool_calls
        return metadata
