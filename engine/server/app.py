"""The OpenAI-compatible HTTP app (starlette on trio): chat completions, configs, models.

A streamed reply's headers go out only with its first token, so a model that fails before it
gets a real HTTP status; after that, errors travel in the stream as ``data: {"error": ...}``.
A client that disconnects cancels its pipeline (and so the model's HTTP request) at once.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import GenerationError, InvalidRequestError, RailstreamError
from ..log import GenerationResponse
from ..stream import RailsStream
from .registry import ConfigRegistry
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

__all__ = ["ServerLimits", "create_app"]

logger = logging.getLogger("railstream.server")

# How much of an oversized body is read and thrown away before the 413, so the client reads
# the answer: closing a socket with unread data in it sends a reset, which can destroy the
# answer in the client's buffer before it is read (an async openai client then retries).
_DISCARD_BYTES = 64 << 20


class ServerLimits:
    """What one server accepts: body size and time, streams at once, who may call, and its
    connections: the listen backlog and how long an idle connection is kept."""

    def __init__(
        self,
        *,
        max_body_bytes: int = 1 << 20,
        max_concurrent: int = 512,
        auth_token: str | None = None,
        body_timeout_s: float = 30.0,
        backlog: int = 2048,
        keep_alive_timeout_s: float = 5.0,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.auth_token = auth_token
        self.body_timeout_s = body_timeout_s
        self.backlog = backlog
        self.keep_alive_timeout_s = keep_alive_timeout_s
        self.active = 0


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
    ) -> None:
        self._stream = stream
        self._first = first
        self._ids = ids
        self._include_usage = include_usage
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            await self._stream.aclose()  # idempotent; cancels the model if still running
            self._done()

    async def _watch(self, receive: Receive, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()  # the client is gone: stop writing, and the stream with it

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
        event(chunk(ids, {"role": "assistant", "content": ""}))
        item: dict[str, Any] | None = self._first
        while item is not None:
            if "text" in item:
                event(chunk(ids, {"content": item["text"]}))
            elif "error" in item:
                # The metadata that follows an error carries the usage of what was generated.
                meta = await anext(self._stream, None)
                if item["error"]["type"] == "guardrails_violation":
                    event(chunk(ids, {}, "content_filter"))
                if self._include_usage and isinstance(meta, dict) and "usage" in meta:
                    event(usage_chunk(ids, _usage(meta["usage"])))
                event(item)
                break
            else:
                event(chunk(ids, {}, item.get("finish_reason") or "stop"))
                if self._include_usage:
                    event(usage_chunk(ids, _usage(item.get("usage"))))
                break
            await flush()  # what the client may read now, before waiting for the next chunk
            item = await anext(self._stream, None)  # type: ignore[arg-type]
        event("[DONE]")
        return b"".join(pending)


def _upstream_error(error: Mapping[str, Any]) -> HttpError:
    """A model failure before the first token, as the HTTP error the client gets instead."""
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    return HttpError(status, str(error.get("message")), type=str(error.get("type")), code=code)


def create_app(registry: ConfigRegistry, limits: ServerLimits | None = None) -> Starlette:
    limits = limits or ServerLimits()

    def authorize(request: Request) -> None:
        if limits.auth_token is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {limits.auth_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
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
        return _json({"status": "ok", "configs": registry.ids})

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

    async def chat_completions(request: Request) -> Response | _SSEReply:
        authorize(request)
        if limits.active >= limits.max_concurrent:
            raise HttpError(
                503,
                "the server is at its limit of concurrent requests; retry shortly",
                type="server_overloaded",
                headers={"Retry-After": "1"},
            )
        limits.active += 1
        handed_over = False

        def done() -> None:
            limits.active -= 1

        try:
            parsed = parse_request(await read_body(request))
            config_id, rails = registry.resolve(parsed.config_id, parsed.model)
            ids = Ids.new(parsed.model or config_id)
            if not parsed.stream:
                return await _complete(rails, parsed, ids)
            reply = await _start_stream(rails, parsed, ids, done)
            handed_over = True
            return reply
        finally:
            if not handed_over:
                done()

    async def _complete(rails: Any, parsed: CompletionRequest, ids: Ids) -> Response:
        try:
            result = await rails.generate_async(
                messages=list(parsed.messages),
                options={
                    "log": {"llm_calls": True, "activated_rails": True},
                    "llm_params": parsed.llm_params,
                },
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        except GenerationError as exc:
            raise _upstream_error(exc.payload.to_dict()["error"]) from None
        assert isinstance(result, GenerationResponse)
        assert result.log is not None
        main = next((c for c in result.log.llm_calls if c.task == "general"), None)
        blocked = any(r.stop for r in result.log.activated_rails)
        finish = (
            "content_filter"
            if blocked
            else (main.finish_reason if main and main.finish_reason else "stop")
        )
        usage = _usage(
            {
                "prompt_tokens": main.prompt_tokens if main else None,
                "completion_tokens": main.completion_tokens if main else None,
                "total_tokens": main.total_tokens if main else None,
            }
        )
        return _json(completion(ids, result.response[0]["content"], finish, usage))

    async def _start_stream(
        rails: Any, parsed: CompletionRequest, ids: Ids, done: Callable[[], None]
    ) -> _SSEReply:
        try:
            stream: RailsStream = rails.stream_async(
                messages=list(parsed.messages),
                options={"llm_params": parsed.llm_params},
                include_metadata=True,
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        try:
            # Headers wait for the first token: a model that fails before it gets a real status.
            first = await stream.__anext__()
            assert isinstance(first, dict)
            error = first.get("error")
            if error is not None and error.get("type") in ("downstream_error", "generation_error"):
                raise _upstream_error(error)
        except BaseException:
            await stream.aclose()
            raise
        return _SSEReply(stream, first, ids, parsed.include_usage, done)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _json(exc.body, exc.status, exc.headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return _json(error_body(str(exc.detail), type=kind), exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return _json(error_body("internal server error", type="internal_error"), 500)

    routes = [
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
