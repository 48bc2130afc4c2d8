"""How stages hand messages on: at once while there is room, waiting only when full."""

from __future__ import annotations

from typing import TypeVar

import trio

__all__ = ["hand_on"]

T = TypeVar("T")


async def hand_on(channel: trio.MemorySendChannel[T], message: T) -> None:
    """Send ``message``, yielding to the scheduler only if the channel is full.

    ``await channel.send`` always yields, so each message wakes the next stage on its own.
    Not yielding while there is room lets messages that are ready together queue up, and the
    next stage take them together (it drains what is queued); a stage that waits for its
    input (a paced model) still yields there, so no message waits on this one.
    """
    try:
        channel.send_nowait(message)
        return
    except trio.WouldBlock:
        pass
    # Waited for outside the except block: inside it, the WouldBlock and its traceback (and
    # the frames that holds) would stay alive as long as the wait, and be chained to whatever
    # ends it (a Cancelled), garbage only the cyclic collector frees.
    await channel.send(message)
