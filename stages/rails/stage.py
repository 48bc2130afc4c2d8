"""The rails stage: checks windows, releases what passed, in order, and ends on a block.

Checks of successive windows may overlap (up to ``max_concurrent_checks``), but verdicts are
applied strictly in window order, so the released text is what one-by-one checking would
give. Two tasks share the work:

    dispatch: reads windows, starts a check for each (waiting while too many are unapplied),
              queues it in order; with stream_first, releases passthrough tokens at once.
    apply:    takes queued checks in order, waits for each verdict, releases what it allows;
              on a block, cancels everything still running and ends the stream.
"""

from __future__ import annotations

import attrs
import trio

from engine.messages import (
    BufferEvent,
    EndOfTokens,
    OutputEvent,
    Passthrough,
    Released,
    StreamEnded,
    StreamFailed,
    Window,
)

from ..flow import hand_on
from .evaluator import Verdict, WindowEvaluator

__all__ = ["run_rails"]


@attrs.define(eq=False)
class _Check:
    """A window's check, queued in window order; ``done`` is set when ``verdict`` is in."""

    window: Window
    done: trio.Event = attrs.field(factory=trio.Event)
    verdict: Verdict | None = None


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
        self._max_checks = max_concurrent_checks
        self._released_upto = 0  # stream position of the first token not yet released
        self._last_passed: Window | None = None

    async def run(self) -> None:
        # Room for every check the slots allow (and the end marker): a smaller queue would hold
        # the dispatcher back, and fewer checks than allowed would overlap.
        queue_send, queue_recv = trio.open_memory_channel[_Check | EndOfTokens](
            self._max_checks + 1
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dispatch, queue_send, nursery)
            with queue_recv:
                final = await self._apply(queue_recv)
                # Ended (or blocked): nothing still running may release more or keep checking.
                # Cancel before the queue closes, so the dispatcher sees Cancelled, not a
                # broken queue.
                nursery.cancel_scope.cancel()
        if final is not None:
            await self._outbox.send(final)

    async def _dispatch(
        self, queue: trio.MemorySendChannel[_Check | EndOfTokens], nursery: trio.Nursery
    ) -> None:
        with queue:
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
                    check = _Check(event)
                    nursery.start_soon(self._check, check)
                    await queue.send(check)
                else:
                    await queue.send(event)
                    return

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

    async def _check(self, check: _Check) -> None:
        assert self._evaluator is not None  # windows come only when there are rails
        check.verdict = await self._evaluator.evaluate(check.window)
        check.done.set()

    async def _apply(
        self, queue: trio.MemoryReceiveChannel[_Check | EndOfTokens]
    ) -> OutputEvent | None:
        async for item in queue:
            if isinstance(item, EndOfTokens):
                await self._release_rest()
                if item.error is not None:
                    return StreamFailed(item.error, "error", item.cause)
                return StreamEnded(item.finish_reason, item.tool_calls)
            await item.done.wait()
            self._slots.release()
            assert item.verdict is not None
            if item.verdict.error is not None:
                return StreamFailed(item.verdict.error, "content_filter")
            await self._release_passed(item.window)
        return None  # upstream went away without an end: the pipeline is being cancelled

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
