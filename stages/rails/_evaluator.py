"""Running a window through the rails (the reply's window for output rails, the user's message
for input rails): in order, or all at once, each with a timeout."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from .._messages import RailRun, Stopwatch, StreamError, Window
from .._passthrough import passes_through
from ._actions import Action, interpret_result
from ._context import Rail, RailContext, RailResult

__all__ = ["ActionRail", "Verdict", "WindowEvaluator"]


class ActionRail:
    """A flow served by a registered action (``check no secrets`` -> ``check_no_secrets``).

    An output rail's action gets the window as ``bot_message``; an input rail's gets the
    user's message as ``user_message`` and no ``bot_message`` (there is no reply yet).
    """

    def __init__(
        self, name: str, action: Action, side: Literal["input", "output"] = "output"
    ) -> None:
        self.name = name
        self.action_name = action.name
        self.side = side
        self._action = action

    async def check(self, window: Window, context: RailContext) -> RailResult:
        text = window.text
        if self.side == "input":
            arguments: dict[str, Any] = {
                "user_message": text,
                "context": {**context.variables, "user_message": text},
                "config": context.config,
            }
        else:
            arguments = {
                "bot_message": text,
                "user_message": context.user_message,
                "context": {
                    **context.variables,
                    "bot_message": text,
                    "user_message": context.user_message,
                    "window_index": window.index,
                },
                "config": context.config,
            }
        value = await self._action(arguments, context.host)
        allowed, reason = interpret_result(value, self._action.output_mapping)
        return RailResult(allowed=allowed, reason=reason, return_value=value)


@attrs.frozen
class Verdict:
    """A window's outcome: allowed, or the error that ends the stream."""

    error: StreamError | None = None

    @property
    def allowed(self) -> bool:
        return self.error is None


class WindowEvaluator:
    """Applies every rail to a window; a rail that raises or runs too long fails closed."""

    def __init__(
        self,
        rails: Sequence[Rail],
        *,
        parallel: bool,
        timeout: float | None,
        context: RailContext,
        timeouts: Mapping[str, float] | None = None,
        side: Literal["input", "output"] = "output",
    ) -> None:
        self._rails = tuple(rails)
        self._side = side
        self._parallel = parallel and len(self._rails) > 1
        default = math.inf if timeout is None else timeout
        # Per rail: its own limit if it has one, else the default.
        self._timeouts = {
            rail.name: (timeouts or {}).get(rail.name, default) for rail in self._rails
        }
        self._context = context

    @property
    def rails(self) -> tuple[Rail, ...]:
        return self._rails

    async def evaluate(self, window: Window) -> Verdict:
        if not self._parallel:
            for rail in self._rails:
                error = await self._run(rail, window)
                if error is not None:
                    return Verdict(error)
            return Verdict()
        first: StreamError | None = None

        async def run(rail: Rail, nursery: trio.Nursery) -> None:
            nonlocal first
            error = await self._run(rail, window)
            if error is not None and first is None:
                first = error
                nursery.cancel_scope.cancel()  # the first block decides; stop the others

        async with trio.open_nursery() as nursery:
            for rail in self._rails:
                nursery.start_soon(run, rail, nursery)
        return Verdict(first)

    async def _run(self, rail: Rail, window: Window) -> StreamError | None:
        watch = Stopwatch()
        verdict: Literal["pass", "block", "error"]
        result: RailResult | None = None
        detail = ""
        limit = self._timeouts[rail.name]
        try:
            with trio.move_on_after(limit) as scope:
                try:
                    result = await rail.check(window, self._context)
                except BaseException as exc:  # fail closed: a broken rail blocks
                    # Its SystemExit or FunctionTimedOut too: that is this rail's failure, not
                    # a reason to end the trio run, the other streams, or the server.
                    if passes_through(exc):
                        raise
                    detail = f"{type(exc).__name__}: {exc}"
        except BaseException:
            # Cut off from outside (its caller cancelled, its consumer gone, another rail's
            # block) or interrupted: it decided nothing, and the log says so.
            with trio.CancelScope(shield=True):
                await self._record(rail, window, watch, "cancelled", None, None)
            raise
        if scope.cancel_called or trio.current_time() >= scope.deadline:
            # Past its deadline, a rail fails closed whatever it returns: one that swallowed
            # the cancellation, or blocked the loop past it, must not let the window through.
            result, detail = None, f"timed out after {limit:g}s"
        if result is not None:
            verdict = "pass" if result.allowed else "block"
            error = None if result.allowed else StreamError.blocked(rail.name)
            reason = result.reason
        else:
            verdict, error, reason = "error", StreamError.rail_failed(rail.name, detail), detail
        await self._record(
            rail, window, watch, verdict, reason, None if result is None else result.return_value
        )
        return error

    async def _record(
        self,
        rail: Rail,
        window: Window,
        watch: Stopwatch,
        verdict: Literal["pass", "block", "error", "cancelled"],
        reason: str | None,
        return_value: Any,
    ) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._context.record(
                RailRun(
                    rail=rail.name,
                    action=rail.action_name,
                    window_index=window.index,
                    verdict=verdict,
                    **watch.stamps(),
                    reason=reason,
                    return_value=return_value,
                    side=self._side,
                )
            )
