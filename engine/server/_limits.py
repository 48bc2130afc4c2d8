"""The server's limits (:class:`ServerLimits`), and what enforces those a request meets: the
bearer token, the concurrency slots, and the request body's size and time.

The connections' limits (the listen backlog, the idle timeout, the shutdown's grace) are
hypercorn's to enforce: ``serve`` hands them over.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import trio
from starlette.requests import ClientDisconnect, Request

from ._wire import HttpError

__all__ = ["ServerLimits", "authorize", "authorized", "read_body", "take_slot"]

logger = logging.getLogger("railstream.server")

# How much of an oversized body is read and thrown away before the 413, so the client reads
# the answer: closing a socket with unread data in it sends a reset, which can destroy the
# answer in the client's buffer before it is read (an async openai client then retries).
_DISCARD_BYTES = 64 << 20


class ServerLimits:
    """What one server accepts: header time, body size and time, streams at once, who may call, and its
    connections: the listen backlog and how long an idle connection is kept. And one choice of
    wire form: ``block_error_event`` also ends a blocked stream with an error event (the
    official openai client then raises ``APIError``; a gateway with fallbacks takes it for a
    failure and may send the request to another model). ``cors_origins``: the browser origins
    allowed to call it, preflight included (``*`` for any)."""

    def __init__(
        self,
        *,
        max_body_bytes: int = 1 << 20,
        max_concurrent: int = 512,
        auth_token: str | None = None,
        body_timeout_s: float = 30.0,
        header_timeout_s: float = 10.0,
        backlog: int = 2048,
        keep_alive_timeout_s: float = 5.0,
        shutdown_grace_s: float = 10.0,
        block_error_event: bool = False,
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.auth_token = auth_token
        self.body_timeout_s = body_timeout_s
        # A request's headers must be complete this long after its first bytes are read.
        self.header_timeout_s = header_timeout_s
        self.backlog = backlog
        self.keep_alive_timeout_s = keep_alive_timeout_s
        self.shutdown_grace_s = shutdown_grace_s
        self.block_error_event = block_error_event
        # Browser origins that may call the server (CORS); none by default.
        self.cors_origins = cors_origins
        self.active = 0


def authorized(limits: ServerLimits, request: Request) -> bool:
    """Whether the request carries the server's bearer token (any request, without one)."""
    if limits.auth_token is None:
        return True
    # The scheme is case-insensitive (RFC 7235): "bearer x" is as good as "Bearer x".
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip(" ").encode(), limits.auth_token.encode()
    )


def authorize(limits: ServerLimits, request: Request) -> None:
    """A 401 unless the request is :func:`authorized`."""
    if not authorized(limits, request):
        raise HttpError(
            401,
            "missing or wrong bearer token",
            type="authentication_error",
            code="invalid_api_key",
        )


def take_slot(limits: ServerLimits) -> Callable[[], None]:
    """One of the ``max_concurrent`` slots, and what frees it; a 503 when none is free."""
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

    return done


async def read_body(limits: ServerLimits, request: Request) -> bytes:
    """The body, within the size and time limits: a body that never finishes is answered 408
    when the time is up, and an oversized one 413. Read before the request takes a
    concurrency slot (see ``App``)."""
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
