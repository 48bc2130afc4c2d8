"""The OpenAI-compatible HTTP app (starlette on trio): chat completions, configs, models.

A streamed reply's headers go out only with its first token, so a model that fails before it
gets a real HTTP status; after that, errors travel in the stream as ``data: {"error": ...}``,
and every stream that started ends with ``data: [DONE]``, even when the server itself fails.
A block is not an error: the reply ends as a content filter ends it, with ``finish_reason:
"content_filter"``, so that a gateway can tell a policy block from a failure.
A client that disconnects cancels its pipeline (and so the model's HTTP request) at once, from
the moment its request has been read, whether it asked for a stream or not.

On SIGTERM or SIGINT (see :class:`Shutdown`) new requests get a 503 while those in flight have
the grace period to finish; a stream still running then ends with an error event and
``data: [DONE]``, and a request still waiting for its reply gets a 503: either way its model's
request is cancelled.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import outcome
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import (
    GenerationError,
    InvalidRequestError,
    RailstreamError,
    StreamingNotSupportedError,
)
from ..log import GenerationLog, GenerationOptions, GenerationResponse, parse_options
from ..messages import StreamError
from ..stream import RailsStream
from .observe import Metrics, RequestRecord
from .registry import ConfigRegistry
from .upstream import Redactor, upstream_http_error
from .wire import (
    CompletionRequest,
    HttpError,
    Ids,
    chunk,
    completion,
    error_body,
    invalid_messages,
    parse_request,
    sse,
    usage_chunk,
)

__all__ = ["ServerLimits", "Shutdown", "create_app"]

logger = logging.getLogger("railstream.server")

T = TypeVar("T")

# The error types of a model's failure (as opposed to a block or a rail's error).
_MODEL_FAILURES = ("downstream_error", "generation_error")

# The last event of a stream the server failed to finish: the detail is in the server's log.
_STREAM_FAILED = error_body(
    "the server failed while streaming this reply; its log has the details",
    type="internal_error",
    code="stream_failed",
)

# The last event of a stream still running when the shutdown's grace period ended.
_SHUTTING_DOWN = error_body(
    "the server is shutting down; retry the request",
    type="server_error",
    code="server_shutting_down",
)

# What a stream's next item is when the shutdown ended it (compared by identity).
_ENDED_BY_SHUTDOWN: dict[str, Any] = {}

# How much of an oversized body is read and thrown away before the 413, so the client reads
# the answer: closing a socket with unread data in it sends a reset, which can destroy the
# answer in the client's buffer before it is read (an async openai client then retries).
_DISCARD_BYTES = 64 << 20


class ServerLimits:
    """What one server accepts: body size and time, streams at once, who may call, and its
    connections: the listen backlog and how long an idle connection is kept. And one choice of
    wire form: ``block_error_event`` also ends a blocked stream with an error event (the
    official openai client then raises ``APIError``; a gateway with fallbacks takes it for a
    failure and may send the request to another model)."""

    def __init__(
        self,
        *,
        max_body_bytes: int = 1 << 20,
        max_concurrent: int = 512,
        auth_token: str | None = None,
        body_timeout_s: float = 30.0,
        backlog: int = 2048,
        keep_alive_timeout_s: float = 5.0,
        shutdown_grace_s: float = 10.0,
        block_error_event: bool = False,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.auth_token = auth_token
        self.body_timeout_s = body_timeout_s
        self.backlog = backlog
        self.keep_alive_timeout_s = keep_alive_timeout_s
        self.shutdown_grace_s = shutdown_grace_s
        self.block_error_event = block_error_event
        self.active = 0


class Shutdown:
    """The server's way out: :meth:`begin` refuses new requests (503); :meth:`end_all`, once
    the grace period is over (or on a second signal), ends what is still in flight: a stream
    with an error event and ``[DONE]``, a request still waiting for its reply with a 503.
    Ending either closes its pipeline, so the model's request is cancelled."""

    def __init__(self) -> None:
        self.begun = False
        self.grace_over = trio.Event()
        self.streams_ended = 0  # streams that got the shutting-down event
        self.requests_ended = 0  # requests answered 503 while their reply was being made
        self._replies: set[_SSEReply] = set()

    def begin(self) -> None:
        self.begun = True

    def end_all(self) -> None:
        self.grace_over.set()  # what waits for a reply watches this
        for reply in list(self._replies):
            reply.end()


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """The counts that are known, and only those: a count nobody reported is absent.

    Never null (the OpenAI schema has integers there, and SDKs turn a null into 0, so cost
    tracking would show the stream as free), never a made-up 0. The openai client reads an
    absent count as None.
    """
    usage = usage or {}
    return {
        key: usage[key]
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        if usage.get(key) is not None
    }


class _SSEReply:
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
        self._shutdown._replies.add(self)
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
            self._shutdown._replies.discard(self)
            await self._stream.aclose()  # idempotent; cancels the model if still running
            self._done()
            if self._metrics is not None:
                self._metrics.in_flight.dec()
            self._finish()

    async def _watch(self, receive: Receive, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
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
                _log_failure(self._redactor, f"config {self._config_id!r}: the stream failed", exc)
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
                event(_SHUTTING_DOWN)
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
                record.outcome, record.rail, record.error = _outcome_of(item["error"])
                if item.get("failed"):
                    event(_STREAM_FAILED)  # nothing more can be read from a failed stream
                    break
                # The metadata that follows an error carries the usage of what was generated.
                meta = await self._next()
                blocked = item["error"]["type"] == "guardrails_violation"
                if blocked:
                    event(self._blocked_chunk(item))
                if self._include_usage and isinstance(meta, dict) and "usage" in meta:
                    event(usage_chunk(ids, _usage(meta["usage"])))
                if blocked and not self._block_error_event:
                    # A block is a reply that ended, as OpenAI's and Azure's content filters end
                    # one: no error event. A gateway takes an error event for the model failing
                    # and streams a fallback model's reply instead, unguarded (LiteLLM does).
                    break
                if item["error"]["type"] in _MODEL_FAILURES:
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
                    event(usage_chunk(ids, _usage(item.get("usage"))))
                break
            await flush()  # what the client may read now, before waiting for the next chunk
            item = await self._next()
        event("[DONE]")
        return b"".join(pending)


class _ClientGone:
    """The reply to a client that left before it: nothing (there is no one to send it to)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


def _rejection(exc: HttpError) -> tuple[str, str | None]:
    """``(outcome, error kind)`` of a request answered with an error status."""
    error = exc.body.get("error", {})
    code = error.get("code")
    kind = str(code) if code is not None else str(error.get("type"))
    if code == "server_shutting_down":
        return "shutdown", kind
    if isinstance(code, str) and code.startswith("upstream_"):
        return "model_error", kind
    return ("server_error" if exc.status >= 500 and exc.status != 503 else "rejected"), kind


def _outcome_of(error: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """``(outcome, rail, error kind)`` of an error payload, for the access log and metrics."""
    kind = error.get("type")
    if kind == "guardrails_violation":
        return "blocked", error.get("param"), None
    if kind == "internal_error":
        return "rail_error", error.get("param"), str(error.get("code"))
    return "model_error", None, str(error.get("code") or kind)


def _client_options(parsed: CompletionRequest) -> GenerationOptions | None:
    """The client's ``guardrails.options``, read as ``generate_async``'s options are."""
    if parsed.options is None:
        return None
    try:
        return parse_options(parsed.options)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"guardrails.{exc}", param="guardrails.options") from None


def _wants_log(asked: GenerationOptions) -> bool:
    log = asked.log
    return log.activated_rails or log.llm_calls or log.internal_events or log.colang_history


def _asked_log(log: GenerationLog, asked: GenerationOptions) -> GenerationLog:
    """The parts of the log the client asked for (the server always keeps all of it)."""
    return attrs.evolve(
        log,
        activated_rails=log.activated_rails if asked.log.activated_rails else [],
        llm_calls=log.llm_calls if asked.log.llm_calls else [],
    )


def _log_failure(redactor: Redactor, what: str, exc: BaseException) -> None:
    # Formatted here, not by logging, so that the traceback is redacted too: a key in an
    # exception's message must not reach the log either.
    detail = "".join(traceback.format_exception(exc))
    logger.error("%s: %s", what, redactor.for_log(detail).rstrip())


async def _unless_client_leaves(
    receive: Receive,
    work: Callable[[], Awaitable[T]],
    discard: Callable[[T], Awaitable[None]],
    shutdown: Shutdown,
) -> T | None:
    """``work()``'s result; or None as soon as the client disconnects, ``work`` cancelled.

    From the moment the request body has been read, the only message left for ``receive`` is
    the disconnect; waiting for it while the model runs is how a client that leaves stops the
    upstream at once, before the first chunk or during a whole (``stream: false``) reply.
    When the shutdown's grace ends first, ``work`` is cancelled and the answer is a 503.
    """
    left = False
    ended = False

    async def end_on_shutdown(scope: trio.CancelScope) -> None:
        nonlocal ended
        await shutdown.grace_over.wait()
        ended = True
        scope.cancel()

    async def watch(scope: trio.CancelScope) -> None:
        nonlocal left
        while (await receive())["type"] != "http.disconnect":
            pass
        left = True
        scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        nursery.start_soon(end_on_shutdown, nursery.cancel_scope)
        # Captured, not raised here: an error raised in a nursery's body comes out wrapped in
        # an exception group, which the HTTP error handlers would not recognise.
        result = await outcome.acapture(work)
        nursery.cancel_scope.cancel()
    if left:
        if isinstance(result, outcome.Value):
            # It finished just as the client left: no one will send it, so no one else
            # will close what it holds.
            await discard(result.value)
        return None  # work's own end (a Cancelled, most likely) is of no use to anyone now
    if ended and not isinstance(result, outcome.Value):
        # Cancelled by the shutdown (a reply that was ready is sent: a stream's then ends at once).
        shutdown.requests_ended += 1
        raise _shutting_down()
    return result.unwrap()


def _shutting_down() -> HttpError:
    return HttpError(
        503,
        "the server is shutting down; retry the request",
        type="server_error",
        code="server_shutting_down",
    )


def create_app(
    registry: ConfigRegistry,
    limits: ServerLimits | None = None,
    shutdown: Shutdown | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The ASGI app. With ``metrics`` (prometheus-client installed), ``GET /metrics`` serves
    them, behind the bearer token when the server has one."""
    limits = limits or ServerLimits()
    shutdown = shutdown or Shutdown()
    redactor = registry.redactor
    if metrics is not None:
        # The streams being written now: their channels, at each scrape.
        metrics.watch_channels(lambda: [reply._stream for reply in list(shutdown._replies)])
        for config_id in registry.ids:
            registry.rails(config_id).add_observer(
                functools.partial(metrics.record_ledger, config_id)
            )

    def authorized(request: Request) -> bool:
        if limits.auth_token is None:
            return True
        # The scheme is case-insensitive (RFC 7235): "bearer x" is as good as "Bearer x".
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip(" ").encode(), limits.auth_token.encode()
        )

    def authorize(request: Request) -> None:
        if not authorized(request):
            raise HttpError(
                401,
                "missing or wrong bearer token",
                type="authentication_error",
                code="invalid_api_key",
            )

    async def read_body(request: Request) -> bytes:
        """The body, within the size and time limits: a body that never finishes frees its
        concurrency slot when the time is up, and an oversized one is answered with a 413."""
        too_large = HttpError(413, f"the request body is larger than {limits.max_body_bytes} bytes")
        declared = request.headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else 0
        if size > limits.max_body_bytes + _DISCARD_BYTES:
            raise too_large  # not worth reading: the client may get a reset instead
        oversized = size > limits.max_body_bytes
        body = bytearray()
        read = 0
        try:
            with trio.move_on_after(limits.body_timeout_s):
                async for piece in request.stream():
                    read += len(piece)
                    oversized = oversized or read > limits.max_body_bytes
                    if not oversized:
                        body += piece
                    elif read > limits.max_body_bytes + _DISCARD_BYTES:
                        break  # not worth reading on: the client may get a reset instead
                else:
                    if oversized:
                        raise too_large
                    return bytes(body)
        except ClientDisconnect:
            logger.warning("a client left before its request body was complete (%d bytes)", read)
            raise HttpError(
                400, "the client closed the connection before the body was complete"
            ) from None
        if oversized:
            raise too_large
        logger.warning(
            "a request body was not complete after %gs (%d bytes): answered 408",
            limits.body_timeout_s,
            read,
        )
        raise HttpError(408, f"the request body was not complete within {limits.body_timeout_s:g}s")

    async def healthz(request: Request) -> Response:
        # Health is for anyone (a load balancer has no token); what is served is not.
        body: dict[str, Any] = {"status": "ok"}
        if authorized(request):
            body["configs"] = registry.ids
        return _json(body)

    async def configs(request: Request) -> Response:
        authorize(request)
        return _json([{"id": config_id} for config_id in registry.ids])

    async def models(request: Request) -> Response:
        authorize(request)
        data = [
            {"id": i, "object": "model", "created": 0, "owned_by": "railstream"}
            for i in registry.ids
        ]
        return _json({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response | _SSEReply | _ClientGone:
        record = RequestRecord()
        try:
            return await _chat_completions(request, record)
        except HttpError as exc:
            record.status = exc.status
            record.outcome, record.error = _rejection(exc)
            raise
        finally:
            if not record.handed_over:
                record.finish(metrics)

    async def _chat_completions(
        request: Request, record: RequestRecord
    ) -> Response | _SSEReply | _ClientGone:
        authorize(request)
        if limits.active >= limits.max_concurrent:
            raise HttpError(
                503,
                "the server is at its limit of concurrent requests; retry shortly",
                type="server_overloaded",
                headers={"Retry-After": "1"},
            )
        limits.active += 1

        def done() -> None:
            limits.active -= 1

        try:
            body = await read_body(request)
            if shutdown.begun:
                # Its body came in after the signal (the listener is closed, so nothing newer
                # can): no model has been asked yet, and the client can retry elsewhere.
                raise _shutting_down()
            parsed = parse_request(body)
            record.stream = parsed.stream
            config_id, rails = registry.resolve(parsed.config_id, parsed.model)
            record.config_id = config_id
            ids = Ids.new(parsed.model or config_id)

            async def answer() -> Response | _SSEReply:
                if not parsed.stream:
                    return await _complete(rails, config_id, parsed, ids, record)
                return await _start_stream(rails, config_id, parsed, ids, done, record)

            async def discard(reply: Response | _SSEReply) -> None:
                if isinstance(reply, _SSEReply):
                    await reply.aclose()

            try:
                reply = await _unless_client_leaves(request.receive, answer, discard, shutdown)
            except HttpError:
                raise
            except Exception as exc:
                # Never an opaque 500: the log says what broke, for whom.
                _log_failure(redactor, f"config {config_id!r}: the request failed", exc)
                raise HttpError(
                    500,
                    "internal server error; the server's log has the details",
                    type="internal_error",
                ) from None
            if reply is None:
                logger.info("config %r: the client left; its generation was cancelled", config_id)
                record.outcome = "client_left"
                return _ClientGone()
            # The reply frees the slot and logs the request once it has been sent.
            record.handed_over = isinstance(reply, _SSEReply)
            return reply
        finally:
            if not record.handed_over:
                done()

    def _failed_upstream(
        config_id: str, payload: Mapping[str, Any], cause: BaseException | None
    ) -> HttpError:
        logger.warning(
            "config %r: the model failed before its first token: %s",
            config_id,
            redactor.for_log(str(payload["error"].get("message"))),
        )
        return upstream_http_error(payload, cause, redactor)

    async def _complete(
        rails: Any, config_id: str, parsed: CompletionRequest, ids: Ids, record: RequestRecord
    ) -> Response:
        try:
            asked = _client_options(parsed)
            result = await rails.generate_async(
                messages=list(parsed.messages),
                options={
                    "log": {"llm_calls": True, "activated_rails": True},
                    # The body's own parameters over those of guardrails.options.
                    "llm_params": {**(asked.llm_params if asked else {}), **parsed.llm_params},
                    "output_vars": asked.output_vars if asked else None,
                },
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        except GenerationError as exc:
            raise _failed_upstream(config_id, exc.payload.to_dict(), exc) from None
        assert isinstance(result, GenerationResponse)
        assert result.log is not None
        main = next((c for c in result.log.llm_calls if c.task == "general"), None)
        stopped = next((r for r in result.log.activated_rails if r.stop), None)
        if main is not None:  # what the model reported, else what was counted
            record.tokens = (
                main.completion_tokens
                if main.completion_tokens is not None
                else main.streamed_tokens
            )
        if stopped is not None:
            blocked = stopped.additional_info.get("verdict") == "block"
            record.outcome, record.rail = ("blocked" if blocked else "rail_error"), stopped.name
        finish = (
            "content_filter"
            if stopped is not None
            else (main.finish_reason if main and main.finish_reason else "stop")
        )
        # As NeMo's server answers: which config; the log and the variables when asked.
        guardrails: dict[str, Any] = {"config_id": config_id}
        if stopped is not None:
            # Which rail ended the reply, as a streamed reply's last chunk says it.
            error = (
                StreamError.blocked(stopped.name)
                if stopped.additional_info.get("verdict") == "block"
                else StreamError.rail_failed(
                    stopped.name, str(stopped.additional_info.get("reason"))
                )
            )
            guardrails.update(redactor.error(error.to_dict()))
        if asked is not None and _wants_log(asked):
            guardrails["log"] = _for_client(
                attrs.asdict(_asked_log(result.log, asked), recurse=True)
            )
        if result.output_data is not None:
            guardrails["output_data"] = _for_client(result.output_data)
        usage = _usage(
            {
                "prompt_tokens": main.prompt_tokens if main else None,
                "completion_tokens": main.completion_tokens if main else None,
                "total_tokens": main.total_tokens if main else None,
            }
        )
        assert not isinstance(result.response, str)  # asked with messages=
        message = result.response[0]
        reply = completion(ids, message["content"], finish, usage, message.get("tool_calls"))
        reply["guardrails"] = guardrails
        return _json(reply)

    def _for_client(value: Any) -> Any:
        """As JSON, with no secret and nothing that says where a model lives."""
        return json.loads(redactor.for_client(json.dumps(value, default=repr)))

    async def _start_stream(
        rails: Any,
        config_id: str,
        parsed: CompletionRequest,
        ids: Ids,
        done: Callable[[], None],
        record: RequestRecord,
    ) -> _SSEReply:
        try:
            asked = _client_options(parsed)
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        if asked is not None and (_wants_log(asked) or asked.output_vars):
            raise HttpError(
                400,
                "guardrails.options: log and output_vars come with a whole reply (stream: "
                "false); a streamed reply's log is not sent",
                param="guardrails.options",
            )
        llm_params = {**(asked.llm_params if asked else {}), **parsed.llm_params}
        try:
            stream: RailsStream = rails.stream_async(
                messages=list(parsed.messages),
                options={"llm_params": llm_params},
                include_metadata=True,
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        except StreamingNotSupportedError as exc:
            # The config serves whole replies only: the client can fix this (stream: false);
            # a 5xx would be retried, in vain.
            raise HttpError(
                400,
                f"config {config_id!r} cannot stream: {exc}",
                param="stream",
                code="streaming_not_supported",
            ) from None
        try:
            # Headers wait for the first token: a model that fails before it gets a real status.
            first = await stream.__anext__()
            assert isinstance(first, dict)
            error = first.get("error")
            if error is not None and error.get("type") in _MODEL_FAILURES:
                raise _failed_upstream(config_id, first, stream.error_cause)
        except BaseException:
            await stream.aclose()
            raise
        return _SSEReply(
            stream,
            first,
            ids,
            parsed.include_usage,
            done,
            redactor,
            config_id,
            shutdown,
            limits.block_error_event,
            record,
            metrics,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _json(exc.body, exc.status, exc.headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return _json(error_body(str(exc.detail), type=kind), exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        _log_failure(redactor, f"{request.method} {request.url.path} failed", exc)
        return _json(error_body("internal server error", type="internal_error"), 500)

    async def metrics_endpoint(request: Request) -> Response:
        authorize(request)
        assert metrics is not None
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    routes = [
        *([Route("/metrics", metrics_endpoint, methods=["GET"])] if metrics is not None else []),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/rails/configs", configs, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HttpError: http_error,
        HTTPException: starlette_error,
        RailstreamError: internal_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers)
