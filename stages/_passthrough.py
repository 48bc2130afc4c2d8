"""Which exceptions out of the application's code end more than its own stream.

A rail or a ``generator=`` may raise a ``BaseException`` that is not an ``Exception``:
``func_timeout.FunctionTimedOut``, a library's ``SystemExit``, a stray ``GeneratorExit``. Such
an exception is that callable's failure, like any other: its rail fails closed, its
generation fails, and nothing else stops (not a stream beside it, not the trio run or the
asyncio loop hosting them, not the server). Only two kinds pass through as they are, because
they are not a failure of the code that raised them:

- ``KeyboardInterrupt``: the user asked the whole program to stop (Ctrl-C);
- ``trio.Cancelled``: trio's own cancellation, which the cancel scope that asked for it must
  receive (a timeout, a block, a consumer that left).

A group holding either passes through whole, so that trio can take its cancellation out.
"""

from __future__ import annotations

import trio

__all__ = ["PASSING_THROUGH", "passes_through"]

PASSING_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, trio.Cancelled)


def passes_through(exc: BaseException) -> bool:
    """True for an exception that must propagate out of a stream, not fail it."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(PASSING_THROUGH) is not None
    return isinstance(exc, PASSING_THROUGH)
