"""Where the application's own code runs: its actions, its ``generator=``, its callbacks.

The pipeline is trio's, but the callables it is handed are the application's, written for the
application's event loop and its blocking libraries. So:

- a sync callable never runs on the event loop's thread: it runs in a worker thread, and a
  caller that gives up on it (a rail timeout, a block) abandons the thread at once;
- an async callable runs where the application runs: on trio, directly; under asyncio, as an
  asyncio task on the application's loop (``railstream.facade._asyncio_bridge.AsyncioUserCode``), so that
  ``await asyncio.sleep()``, aiohttp or ``AsyncOpenAI`` work, with cancellation both ways.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import trio

__all__ = ["CLEANUP_GRACE_S", "TrioUserCode", "UserCode", "is_async_callable"]

T = TypeVar("T")

# How long application code may take to finish once cancelled (a generator's cleanup, an
# asyncio task that was cancelled) before railstream stops waiting for it: a hung callable
# must never hang the stream.
CLEANUP_GRACE_S = 1.0


class UserCode(Protocol):
    """Runs the application's callables on its behalf, from trio."""

    async def run_sync(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread; cancelling the caller abandons the thread."""
        ...

    async def run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()`` on the application's event loop; cancelling the caller cancels it."""
        ...


class TrioUserCode:
    """The application is trio: its coroutines are awaited as they are."""

    async def run_sync(self, fn: Callable[[], T]) -> T:
        # abandon_on_cancel: a blocking call (requests.post to a moderation API) that outlives
        # its rail's deadline must not hold the stream; its late result is thrown away.
        # The result crosses back in a tuple: trio refuses a thread's function that returns a
        # coroutine, and a plain ``def`` wrapped around an async action (a decorator, as NeMo
        # users write) returns one, for the caller to await as NeMo does.
        (result,) = await trio.to_thread.run_sync(lambda: (fn(),), abandon_on_cancel=True)
        return result

    async def run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        return await make()


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, and objects or partials whose call is one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  (an instance with async __call__)
    return call is not None and inspect.iscoroutinefunction(call)
