"""railstream from asyncio: the trio pipeline runs in trio's guest mode on the asyncio loop.

One trio guest run per asyncio loop, started on first use, hosts the pipelines of every
asyncio caller of that loop; ``call`` runs a trio coroutine there and hands its result (or
its exception, unchanged) back. Both sides run on the loop's thread, so nothing crosses
threads per token. Cancellation crosses both ways: a cancelled asyncio caller cancels its
trio task (and so the stream, and the model's HTTP request); the guest run ends when the loop
shuts down (``asyncio.run`` cancels the keeper task, which stops the run and waits for it).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import outcome
import sniffio
import trio

from railstream.stages import CLEANUP_GRACE_S, TrioUserCode

__all__ = ["AsyncioBridge", "AsyncioUserCode", "in_asyncio"]

logger = logging.getLogger("railstream.asyncio")

T = TypeVar("T")


def in_asyncio() -> bool:
    """True when the caller is an asyncio task (rather than a trio one)."""
    try:
        return sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


class AsyncioBridge:
    # One guest run per asyncio loop; forgotten with the loop.
    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioBridge]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    async def get(cls) -> AsyncioBridge:
        """The bridge of the running asyncio loop, started if need be."""
        loop = asyncio.get_running_loop()
        bridge = cls._by_loop.get(loop)
        if bridge is not None and bridge._broken:
            # One trio run per thread at a time: the ending one must be over first.
            await asyncio.shield(bridge._finished)
        if bridge is None or bridge._finished.done():
            bridge = cls._by_loop[loop] = cls(loop)
        await asyncio.shield(bridge._started)
        return bridge

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._started: asyncio.Future[None] = loop.create_future()
        self._finished: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        self._nursery: trio.Nursery | None = None
        self._broken = False  # a call raised past `except Exception`: the run is ending
        self._scope: trio.CancelScope | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        trio.lowlevel.start_guest_run(
            self._trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=self._on_done,
            host_uses_signal_set_wakeup_fd=True,
        )
        self._keeper = loop.create_task(self._keep(), name="railstream trio guest run")

    async def _trio_main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._started.set_result(None)
                await trio.sleep_forever()

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        if isinstance(result, outcome.Error):
            # Nothing awaits the guest run itself: its failure is told here, or never.
            logger.error(
                "railstream's trio guest run on this asyncio loop crashed; the next call "
                "starts a new one",
                exc_info=result.error,
            )
        if not self._finished.done():
            self._finished.set_result(result)
        if not self._started.done():
            self._started.set_exception(RuntimeError("railstream's trio guest run did not start"))

    async def _keep(self) -> None:
        try:
            await self._loop.create_future()  # until the loop shuts down and cancels us
        except asyncio.CancelledError:
            self.stop()
            await self._finished
            raise

    def stop(self) -> None:
        """End the guest run (everything in it is cancelled)."""
        if self.token is not None and self._scope is not None and not self._finished.done():
            self.token.run_sync_soon(self._scope.cancel)

    def run_sync_soon(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` in trio's context soon (from asyncio code, or from ``__del__``)."""
        if self.token is not None and not self._finished.done():
            self.token.run_sync_soon(fn)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` in the trio guest run, from asyncio."""
        future: asyncio.Future[T] = self._loop.create_future()
        finished: asyncio.Future[None] = self._loop.create_future()
        scope = trio.CancelScope()

        async def run_in_trio() -> None:
            try:
                with scope:
                    result = await fn(*args)
                    if not future.done():
                        future.set_result(result)
            except Exception as exc:  # handed to the asyncio caller, never to the nursery
                if not future.done():
                    future.set_exception(exc)
            except BaseException:
                # (Not a cancellation of this call's own scope, which `with scope` absorbed.)
                # It ends the whole guest run: no new call may be sent to it meanwhile.
                self._broken = True
                raise
            finally:
                if not future.done():
                    # The guest run is going away under this call (the loop shutting down,
                    # or a crash): the caller learns so, rather than seeing a cancellation
                    # it never asked for.
                    future.set_exception(
                        RuntimeError("railstream's trio guest run stopped before this call ended")
                    )
                finished.set_result(None)

        def spawn() -> None:
            assert self._nursery is not None
            self._nursery.start_soon(run_in_trio)

        assert self.token is not None
        self.token.run_sync_soon(spawn)
        try:
            return await future
        except asyncio.CancelledError:
            # The asyncio caller was cancelled: so is its trio task (idempotent if it ended),
            # and the caller resumes once that cancellation is done, as in trio.
            self.token.run_sync_soon(scope.cancel)
            await asyncio.shield(finished)
            raise


class AsyncioUserCode(TrioUserCode):
    """The application is asyncio: its coroutines run as asyncio tasks on its own loop.

    The pipeline stays on trio (the guest run on the same loop and thread); each awaitable
    of the application's (an action, a step of its ``generator=``) becomes an asyncio task
    in a copy of the application's context (its contextvars: request ids, tracing), and trio
    waits for it. Cancelling the trio side cancels the task, and waits for it to finish,
    within :data:`~railstream.stages._usercode.CLEANUP_GRACE_S`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        self._loop = loop
        self._context = context

    @classmethod
    def here(cls) -> AsyncioUserCode:
        """For the asyncio code calling now: its loop and its context."""
        return cls(asyncio.get_running_loop(), contextvars.copy_context())

    async def run_async(self, make: Callable[[], Awaitable[T]]) -> T:
        async def step() -> outcome.Outcome[T]:
            # What the callable raises crosses as its outcome, not as the task's exception:
            # asyncio re-raises a task's SystemExit into its loop, so a rail's SystemExit
            # would stop the application's loop. Here it is that rail's failure (see
            # railstream.stages.passes_through). Cancellation and Ctrl-C keep their meaning.
            try:
                return outcome.Value(await make())
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except BaseException as exc:
                return outcome.Error(exc)

        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        # Guest mode runs trio on the loop's own thread, so the task can be made right here.
        # A copy of the context per task: one context cannot be entered by two tasks at once.
        task = self._loop.create_task(step(), context=self._context.copy())
        task.add_done_callback(lambda _: token.run_sync_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            task.cancel()
            with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                await done.wait()
            if not task.done():
                logger.warning("an asyncio task of the application ignored its cancellation")
            raise
        if task.cancelled():
            # Cancelled on the asyncio side, not by us (the loop shutting down, say): a failure
            # of that callable as the pipeline sees it, so a rail fails closed. CancelledError
            # itself must not cross: in trio code it would pass every `except Exception`.
            raise RuntimeError("the application's asyncio task was cancelled")
        return task.result().unwrap()
