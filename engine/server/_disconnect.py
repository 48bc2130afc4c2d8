"""Watching for a client that leaves: once its request has been read, a client that
disconnects cancels what it asked for at once (its pipeline, and so its model's request),
whether it asked for a stream or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import outcome
import trio
from starlette.types import Receive, Scope, Send

from ._shutdown import Shutdown, shutting_down

__all__ = ["ClientGone", "unless_client_leaves", "until_disconnect"]

T = TypeVar("T")


async def until_disconnect(receive: Receive) -> None:
    """Returns once the client has disconnected: from the moment the request body has been
    read, the disconnect is the only message left for ``receive``."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientGone:
    """The reply to a client that left before it: nothing (there is no one to send it to)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


async def unless_client_leaves(
    receive: Receive,
    work: Callable[[], Awaitable[T]],
    discard: Callable[[T], Awaitable[None]],
    shutdown: Shutdown,
) -> T | None:
    """``work()``'s result; or None as soon as the client disconnects, ``work`` cancelled.

    Waiting for the disconnect while the model runs is how a client that leaves stops the
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
        await until_disconnect(receive)
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
        raise shutting_down()
    return result.unwrap()
