"""What a rail is given, and what it gives back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from engine.messages import LogRecord, Window

__all__ = ["Rail", "RailContext", "RailResult"]


@attrs.frozen(kw_only=True)
class RailContext:
    """The request a window belongs to, and where a rail records its own LLM calls."""

    user_message: str
    config: Any
    record: Callable[[LogRecord], Awaitable[None]]


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
