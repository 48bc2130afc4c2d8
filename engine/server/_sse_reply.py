"""A streamed chat completion: a running ``RailsStream`` written as ``chat.completion.chunk``
SSE events.

Its headers go out only once the stream's first item is known (see ``App``): from then on, errors
travel in the stream as ``data: {"error": ...}``, and every stream that started ends with
``data: [DONE]``, even when the server itself fails. A block is not an error: the reply ends as
a content filter ends it, with ``finish_reason: "content_filter"``, so that a gateway can tell a
policy block from a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from starlette.types import Receive, Scope, Send

from railstream.facade import RailsStream

from ._disconnect import until_disconnect
from ._observe import Metrics, RequestRecord
from ._outcomes import MODEL_FAILURES, log_failure, outcome_of
from ._shutdown import SHUTTING_DOWN, Shutdown
from ._upstream import Redactor
from ._wire import Ids, chunk, error_body, known_usage, sse, usage_chunk

__all__ = ["SSEReply"]

logger = logging.getLogger("railstream.server")

# The last event of a stream the server failed to finish: the detail is in the server's log.
_STREAM_FAILED = error_body(
    "the server failed while streaming this reply; its log has the details",
    type="internal_error",
    code="stream_failed",
)

# What a stream's next item is when the shutdown ended it (compared by identity).
_ENDED_BY_SHUTDOWN: dict[str, Any] = {}


class SSEReply:
    """A streamed chat completion: SSE events from a running ``RailsStream``.

    While it writes, it listens for the client's disconnect and, on it, cancels the stream.
    """

    def __init__(
        self,
        stream: RailsStream,
        first: dict[str, Any],
        ids: Ids,
        include_usage: bool,
        done: Callable[[], None],
        redactor: Redactor,
        config_id: str,
        shutdown: Shutdown,
        block_error_event: bool = False,
        record: RequestRecord | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._record = record or RequestRecord(stream=True, config_id=config_id)
        self._metrics = metrics
        self._stream = stream
        self._first = first
        self._ids = ids
        self._include_usage = include_usage
        self._done = done
        self._redactor = redactor
        self._config_id = config_id
        self._shutdown = shutdown
        self._block_error_event = block_error_event
        self._ending = False
        # The wait for the stream's next item, which the shutdown cancels. Only the wait:
        # a send cancelled half-way would leave the client half an event, not a clean end.
        self._waiting: trio.CancelScope | None = None

    @property
    def stream(self) -> RailsStream:
        """The stream it writes (the metrics sample its channels)."""
        return self._stream

    def end(self) -> None:
        """The shutdown's grace is over: end with the shutting-down event and ``[DONE]``."""
        self._ending = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def aclose(self) -> None:
        """Drop the reply unsent (its client left before it could start)."""
        await self._stream.aclose()
        self._record.outcome = "client_left"
        self._finish()

    def _finish(self) -> None:
        main = next((c for c in self._stream.log.llm_calls if c.task == "general"), None)
        if main is not None:  # what the model reported, else what was counted
            self._record.tokens = (
                main.completion_tokens
                if main.completion_tokens is not None
                else main.streamed_tokens
            )
        self._record.finish(self._metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._shutdown.replies.add(self)
        if self._shutdown.grace_over.is_set():
            self._ending = True  # made just as the grace ended: end it at once, all the same
        if self._metrics is not None:
            self._metrics.in_flight.inc()
        try:
            last: bytes | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, receive, nursery.cancel_scope)
                last = await self._write(send)
                nursery.cancel_scope.cancel()
            if last is not None:
                # The final send, outside the watcher's reach: while the ASGI server handles it,
                # it ends the request, which tells the watcher the client is "gone"; cancelled
                # then, the server never closes an HTTP/1.0 or `Connection: close` connection
                # nor arms a keep-alive one's idle timer, and the connection is never given back.
                await send({"type": "http.response.body", "body": last, "more_body": False})
        finally:
            self._shutdown.replies.discard(self)
            await self._stream.aclose()  # idempotent; cancels the model if still running
            self._done()
            if self._metrics is not None:
                self._metrics.in_flight.dec()
            self._finish()

    async def _watch(self, receive: Receive, scope: trio.CancelScope) -> None:
        await until_disconnect(receive)
        self._record.outcome = "client_left"
        scope.cancel()  # the client is gone: stop writing, and the stream with it

    async def _next(self) -> dict[str, Any] | None:
        """The stream's next item; a failure of the stream itself (the headers are out, so no
        status can say it) becomes its last event, and is logged."""
        if self._ending:
            return _ENDED_BY_SHUTDOWN
        with trio.CancelScope() as self._waiting:
            try:
                return await anext(self._stream, None)  # type: ignore[arg-type]
            except Exception as exc:
                log_failure(self._redactor, f"config {self._config_id!r}: the stream failed", exc)
                self._record.outcome, self._record.error = "server_error", type(exc).__name__
                return {**_STREAM_FAILED, "failed": True}
            finally:
                self._waiting = None
        return _ENDED_BY_SHUTDOWN  # only end() cancels this scope

    def _blocked_chunk(self, item: dict[str, Any]) -> dict[str, Any]:
        """The final chunk of a blocked reply: ``finish_reason: "content_filter"``, and which
        rail blocked it in a ``guardrails`` field (SDKs keep unknown fields: the openai
        client's ``chunk.model_extra``)."""
        final = chunk(self._ids, {}, "content_filter")
        final["guardrails"] = {
            "config_id": self._config_id,
            **self._redactor.error(item),
        }
        return final

    async def _write(self, send: Send) -> bytes:
        """Everything but the final message, whose bytes it returns."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )

        # Events ready together go out in one send: each ASGI send costs a trip through the
        # server's HTTP machinery, which dominates the CPU per request.
        pending: list[bytes] = []

        def event(data: dict[str, Any] | str) -> None:
            pending.append(sse(data))

        async def flush() -> None:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
            pending.clear()

        ids = self._ids
        record = self._record
        latency = (
            self._metrics.chunk_latency_of(self._config_id) if self._metrics is not None else None
        )
        event(chunk(ids, {"role": "assistant", "content": ""}))
        item: dict[str, Any] | None = self._first
        while item is not None:
            if item is _ENDED_BY_SHUTDOWN:
                event(SHUTTING_DOWN)
                self._shutdown.streams_ended += 1
                record.outcome = "shutdown"
                break
            if "text" in item:
                event(chunk(ids, {"content": item["text"]}))
                if record.first_chunk_s is None:
                    record.first_chunk_s = time.perf_counter() - record.started
                record.released_chunks += 1
                if latency is not None:
                    latency(self._stream.last_chunk_latency())
            elif "error" in item:
                record.outcome, record.rail, record.error = outcome_of(item["error"])
                if item.get("failed"):
                    event(_STREAM_FAILED)  # nothing more can be read from a failed stream
                    break
                # The metadata that follows an error carries the usage of what was generated.
                meta = await self._next()
                blocked = item["error"]["type"] == "guardrails_violation"
                if blocked:
                    event(self._blocked_chunk(item))
                if self._include_usage and isinstance(meta, dict) and "usage" in meta:
                    event(usage_chunk(ids, known_usage(meta["usage"])))
                if blocked and not self._block_error_event:
                    # A block is a reply that ended, as OpenAI's and Azure's content filters end
                    # one: no error event. A gateway takes an error event for the model failing
                    # and streams a fallback model's reply instead, unguarded (LiteLLM does).
                    break
                if item["error"]["type"] in MODEL_FAILURES:
                    # The client reads what failed; where (the endpoint) is for this log.
                    logger.warning(
                        "config %r: the model failed mid-reply: %s",
                        self._config_id,
                        self._redactor.for_log(str(item["error"]["message"])),
                    )
                event(self._redactor.error(item))
                break
            else:
                if item.get("tool_calls"):
                    # Whole calls in one delta (valid OpenAI streaming: pieces may be any size).
                    event(chunk(ids, {"tool_calls": item["tool_calls"]}))
                event(chunk(ids, {}, item.get("finish_reason") or "stop"))
                if self._include_usage:
                    event(usage_chunk(ids, known_usage(item.get("usage"))))
                break
            await flush()  # what the client may read now, before waiting for the next chunk
            item = await self._next()
        event("[DONE]")
        return b"".join(pending)
