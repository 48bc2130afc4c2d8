"""Putting a built-in rail's own call (a judge's model, the jailbreak endpoint) in the log,
cut-off calls too: a call that was made may be billed."""

from __future__ import annotations

import contextlib

import trio

from .._messages import LLMCall
from ._context import RailContext

__all__ = ["record_anyway"]


async def record_anyway(context: RailContext, call: LLMCall) -> None:
    """Record ``call`` even while cancelled; only a usage stage already gone is no place."""
    with (
        trio.CancelScope(shield=True),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await context.record(call)
