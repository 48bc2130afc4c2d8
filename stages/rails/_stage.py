"""The rails stage: checks windows, releases what passed, in order, and ends on a block.

Checks of successive windows may overlap (up to ``max_concurrent_checks``), but verdicts are
applied strictly in window order, so the released text is what one-by-one checking would
give. The stage's own task reads the windows: it starts a check task for each (waiting while
too many are unapplied) and, with stream_first, releases passthrough tokens at once. Each
check, once its verdict is in, waits for the check before it to be applied, then applies its
own: it releases what its window allows or, on a block, cancels the reading and every other
check, and the stage ends the stream.

One task per stream rather than a reader and an applier joined by a queue: under load each
task and channel of a stream is a few dozen objects the cyclic garbage collector scans again
and again (see README, Performance).
"""

from __future__ import annotations

import attrs
import trio

from .._flow import hand_on
from .._messages import (
    BufferEvent,
    OutputEvent,
    Passthrough,
    Released,
    StreamEnded,
    StreamFailed,
    Window,
)
from ._evaluator import Verdict, WindowEvaluator

__all__ = ["run_rails"]


@attrs.define(eq=False)
class _Check:
    """A window's check; ``applied`` is set once its verdict has been applied (its text
    released), after the verdict of ``before``, the window's predecessor."""

    window: Window
    before: _Check | None
    applied: trio.Event = attrs.field(factory=trio.Event)


async def run_rails(
    inbox: trio.MemoryReceiveChannel[BufferEvent],
    outbox: trio.MemorySendChannel[OutputEvent],
    *,
    evaluator: WindowEvaluator | None,
    stream_first: bool,
    context_size: int,
    max_concurrent_checks: int,
) -> None:
    """Run the output rails over the windows from ``inbox``; send what passes to ``outbox``."""
    with inbox, outbox:
        stage = _RailsStage(
            inbox, outbox, evaluator, stream_first, context_size, max_concurrent_checks
        )
        await stage.run()


class _RailsStage:
    def __init__(
        self,
        inbox: trio.MemoryReceiveChannel[BufferEvent],
        outbox: trio.MemorySendChannel[OutputEvent],
        evaluator: WindowEvaluator | None,
        stream_first: bool,
        context_size: int,
        max_concurrent_checks: int,
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._evaluator = evaluator
        self._stream_first = stream_first
        self._context = context_size
        # A slot is held from a check's start until its verdict is applied, so both the checks
        # in flight and the verdicts waiting behind a slow one stay within the limit.
        self._slots = trio.Semaphore(max_concurrent_checks)
        self._released_upto = 0  # stream position of the first token not yet released
        self._last_passed: Window | None = None
        self._blocked: StreamFailed | None = None

    async def run(self) -> None:
        final: OutputEvent | None = None
        # The checks' nursery: its body reads the windows, so a block cancels both at once.
        async with trio.open_nursery() as checks:
            final = await self._read(checks)
            # Ended (every check applied) or abandoned: nothing may be left running.
            checks.cancel_scope.cancel()
        if self._blocked is not None:
            final = self._blocked
        if final is not None:
            await self._outbox.send(final)

    async def _read(self, checks: trio.Nursery) -> OutputEvent | None:
        last: _Check | None = None
        async for first in self._inbox:
            event: BufferEvent = first
            if isinstance(event, Passthrough):
                # Released together with any passthrough queued behind it (as buffering
                # does with token batches): one message for all that is ready.
                released, event = self._coalesce_passthrough(event)
                await hand_on(self._outbox, released)
                if isinstance(event, Passthrough):
                    continue
            if isinstance(event, Window):
                await self._slots.acquire()
                last = _Check(event, last)
                checks.start_soon(self._check, last, checks.cancel_scope)
                continue
            # The end: it follows every window's verdict, and the tail they held back.
            if last is not None:
                await last.applied.wait()
            await self._release_rest()
            if event.error is not None:
                return StreamFailed(event.error, "error", event.cause)
            return StreamEnded(event.finish_reason, event.tool_calls)
        return None  # upstream went away without an end: the pipeline is being cancelled

    def _coalesce_passthrough(self, passthrough: Passthrough) -> tuple[Released, BufferEvent]:
        parts = [passthrough.text]
        newest_at = passthrough.newest_at
        following: BufferEvent = passthrough
        while True:
            try:
                queued = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if not isinstance(queued, Passthrough):
                following = queued
                break
            parts.append(queued.text)
            newest_at = queued.newest_at
        return Released("".join(parts), passthrough.oldest_at, newest_at), following

    async def _check(self, check: _Check, checks: trio.CancelScope) -> None:
        assert self._evaluator is not None  # windows come only when there are rails
        verdict: Verdict | Exception
        try:
            verdict = await self._evaluator.evaluate(check.window)
        except Exception as exc:
            # A failure of the stage itself (the evaluator fails a rail closed, so this is a
            # bug) takes its turn too: the windows before this one are released first.
            verdict = exc
        if check.before is not None:
            await check.before.applied.wait()
            check.before = None  # applied: nothing needs it any more
        self._slots.release()
        if isinstance(verdict, Exception):
            raise verdict
        if verdict.error is not None:
            # Ended by this block: nothing still running may release more or keep checking.
            self._blocked = StreamFailed(verdict.error, "content_filter")
            checks.cancel()
            return
        await self._release_passed(check.window)
        check.applied.set()

    async def _release_passed(self, window: Window) -> None:
        """Release the tokens of ``window`` that no later window will hold."""
        self._last_passed = window
        if self._stream_first:
            return
        # The next window starts with this one's last C tokens: they wait for its verdict.
        upto = max(window.start, window.end - self._context)
        await self._release(window, upto)

    async def _release_rest(self) -> None:
        """At the end: the held-back tail of the last window has passed every window holding it."""
        if not self._stream_first and self._last_passed is not None:
            await self._release(self._last_passed, self._last_passed.end)

    async def _release(self, window: Window, upto: int) -> None:
        if upto <= self._released_upto:
            return
        first = self._released_upto
        self._released_upto = upto
        released = Released(
            window.text_between(first, upto), window.arrived_at(first), window.arrived_at(upto - 1)
        )
        await self._outbox.send(released)
