"""Actions: user callables that decide whether a window of output may pass."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from railstream.config_schema import ACTION_BLOCKING_ATTR, RailstreamError, output_mapping_of

from .._usercode import UserCode, is_async_callable

__all__ = ["ACTION_ARGUMENTS", "Action", "RailResultError", "interpret_result"]

# What railstream can hand an action, by parameter name.
ACTION_ARGUMENTS = ("bot_message", "user_message", "context", "config")


class RailResultError(RailstreamError, TypeError):
    """An action returned something that is neither a verdict nor a result object."""


@attrs.frozen
class Action:
    """A registered action, with the arguments it asks for worked out once."""

    name: str
    fn: Callable[..., Any]
    wants: tuple[str, ...] | None  # None: it takes **kwargs, so it gets everything
    is_async: bool = False
    # A sync action declared never to block (@action(blocking=False)): called on the loop.
    inline: bool = False
    # NeMo's @action(output_mapping=f): f(return value) is True to block.
    output_mapping: Callable[[Any], Any] | None = None

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], name: str) -> Action:
        if not callable(fn):
            raise TypeError(f"action {name!r} is not callable: {fn!r}")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        return cls(
            name=name,
            fn=fn,
            wants=_wanted(signature, name) if signature is not None else None,
            is_async=is_async_callable(fn),
            inline=getattr(fn, ACTION_BLOCKING_ATTR, True) is False,
            output_mapping=output_mapping_of(fn),
        )

    async def __call__(self, arguments: Mapping[str, Any], host: UserCode) -> Any:
        """Run the action where the application's code runs (see ``railstream.stages._usercode``)."""
        # What this side of the rails does not give (an input rail has no bot_message) is left
        # to the parameter's default.
        kwargs = (
            dict(arguments)
            if self.wants is None
            else {k: arguments[k] for k in self.wants if k in arguments}
        )
        call = functools.partial(self.fn, **kwargs)
        if self.is_async:
            return await host.run_async(call)
        # Sync: in a worker thread, never on the event loop (it may block on I/O), unless
        # declared never to block.
        result = call() if self.inline else await host.run_sync(call)
        if inspect.isawaitable(result):  # a plain callable that returned a coroutine
            awaitable = result
            return await host.run_async(lambda: awaitable)
        return result


def _wanted(signature: inspect.Signature, name: str) -> tuple[str, ...] | None:
    """The arguments an action asks for by name (None: it takes ``**kwargs``, so all)."""
    wants: list[str] = []
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return None
        if param.name in ACTION_ARGUMENTS and param.kind is not param.POSITIONAL_ONLY:
            wants.append(param.name)
        elif param.default is param.empty and param.kind is not param.VAR_POSITIONAL:
            raise TypeError(
                f"action {name!r} requires parameter {param.name!r}, which railstream does not "
                f"provide (it passes, by name: {', '.join(ACTION_ARGUMENTS)})"
            )
    return tuple(wants)


def interpret_result(
    value: Any, output_mapping: Callable[[Any], Any] | None = None
) -> tuple[bool, str | None]:
    """``(allowed, reason)`` from what an action returned: a bool, or ``.is_blocked``; or,
    for an action with NeMo's ``output_mapping``, what the mapping says of it (True: block).
    Anything else fails closed: railstream never guesses that an unknown answer allows."""
    if output_mapping is not None:
        # As NeMo does, a tuple's first item is the value mapped.
        blocked = output_mapping(value[0] if isinstance(value, tuple) else value)
        if not isinstance(blocked, bool):
            raise RailResultError(
                f"output_mapping returned {type(blocked).__name__}, expected bool (True = block)"
            )
        return not blocked, None
    if isinstance(value, bool):
        return value, None
    if hasattr(value, "is_blocked"):
        blocked = value.is_blocked
        if not isinstance(blocked, bool):
            raise RailResultError(f"result.is_blocked is {type(blocked).__name__}, expected bool")
        reason = getattr(value, "reason", None)
        return not blocked, None if reason is None else str(reason)
    raise RailResultError(
        f"returned {type(value).__name__}, expected bool (True = allowed) or an object with .is_blocked"
    )
