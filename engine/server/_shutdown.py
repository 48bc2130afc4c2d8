"""The server's way out on SIGTERM or SIGINT: :class:`Shutdown`, and what it answers.

New requests get a 503 while those in flight have the grace period to finish; a stream still
running then ends with an error event and ``data: [DONE]``, and a request still waiting for its
reply gets a 503: either way its model's request is cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ._wire import HttpError, error_body

if TYPE_CHECKING:
    from ._sse_reply import SSEReply

__all__ = ["SHUTTING_DOWN", "Shutdown", "shutting_down"]

# The last event of a stream still running when the shutdown's grace period ended.
SHUTTING_DOWN = error_body(
    "the server is shutting down; retry the request",
    type="server_error",
    code="server_shutting_down",
)


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
        self.replies: set[SSEReply] = set()  # the streams being written now

    def begin(self) -> None:
        self.begun = True

    def end_all(self) -> None:
        self.grace_over.set()  # what waits for a reply watches this
        for reply in list(self.replies):
            reply.end()


def shutting_down() -> HttpError:
    """The answer to a request the shutdown ended before its reply started."""
    return HttpError(
        503,
        "the server is shutting down; retry the request",
        type="server_error",
        code="server_shutting_down",
    )
