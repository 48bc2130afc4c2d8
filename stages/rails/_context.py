"""What a rail is given, and what it gives back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import attrs

from .._messages import LogRecord, Window
from .._usercode import TrioUserCode, UserCode

__all__ = ["Rail", "RailContext", "RailResult"]


@attrs.frozen(kw_only=True)
class RailContext:
    """The request a window belongs to, where a rail records its own LLM calls, and where
    the application's actions run (its event loop, or a worker thread)."""

    user_message: str
    config: Any
    # The conversation before the user's message (user and assistant turns), for the rails
    # that judge a message in its conversation (topic safety).
    history: tuple[Mapping[str, Any], ...] = ()
    # NeMo's context variables, from the request's context messages: in an action's context.
    variables: Mapping[str, Any] = attrs.field(factory=dict)
    record: Callable[[LogRecord], Awaitable[None]]
    host: UserCode = attrs.field(factory=TrioUserCode)


@attrs.frozen(kw_only=True)
class RailResult:
    allowed: bool
    reason: str | None = None
    return_value: Any = None


class Rail(Protocol):
    """One output flow, ready to check windows."""

    @property
    def name(self) -> str: ...

    @property
    def action_name(self) -> str: ...

    async def check(self, window: Window, context: RailContext) -> RailResult: ...
