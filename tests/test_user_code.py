"""The application's own code (actions, ``generator=``) runs where it can: sync code in worker
threads, never on the event loop; asyncio code on the application's asyncio loop. A rail that
overruns its deadline fails closed, whatever it does then."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import trio
import trio.testing

from .helpers import HANG_GUARD_S, USER, collect, make_rails

ASYNCIO_GUARD_S = 30  # real seconds: asyncio has no autojump clock

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def error_of(chunk: str) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(chunk)["error"]
    return error


# Sync rails: a worker thread, abandoned at the deadline


async def test_a_sync_rail_runs_in_a_worker_thread_not_on_the_event_loop() -> None:
    seen: list[threading.Thread] = []

    def check(bot_message: str) -> bool:
        seen.append(threading.current_thread())
        return True

    rails = make_rails(["one two three"], {"check": check}, flows=["check"], chunk_size=2)
    with trio.fail_after(ASYNCIO_GUARD_S):
        chunks = await collect(rails)
    assert "".join(chunks) == "one two three"
    assert seen, "the rail never ran"
    loop_thread = threading.current_thread()
    assert all(t is not loop_thread for t in seen), "a sync rail ran on the event loop's thread"


async def test_a_blocking_sync_rail_past_its_deadline_fails_closed_and_frees_the_loop() -> None:
    """A rail blocking 0.5 s (read: requests.post) with rail_timeout_s 0.05: the window fails
    closed at the deadline, and the event loop goes on meanwhile (other streams do not stall).
    Real time: the rail really blocks a thread."""
    release = threading.Event()

    def slow(bot_message: str) -> bool:
        release.wait(0.5)
        return True  # too late: the verdict must not count

    rails = make_rails(["a b c d"], {"slow": slow}, flows=["slow"], rail_timeout_s=0.05)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.005)
            ticks += 1

    try:
        with trio.fail_after(ASYNCIO_GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                chunks = await collect(rails)
                ticks_during = ticks
                nursery.cancel_scope.cancel()
    finally:
        release.set()
    assert error_of(chunks[-1]) == {
        "message": "Internal error in slow rail: timed out after 0.05s",
        "type": "internal_error",
        "param": "slow",
        "code": "rail_execution_failure",
    }
    assert "".join(chunks[:-1]) == ""  # stream_first false: nothing of the window passed
    assert ticks_during >= 2, "the event loop was frozen while the sync rail blocked"


async def test_a_rail_that_swallows_its_cancellation_and_allows_fails_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stubborn(bot_message: str) -> bool:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            return True  # "allowed", past the deadline: must not pass the window
        return True

    rails = make_rails(["a b c d"], {"stubborn": stubborn}, flows=["stubborn"], rail_timeout_s=1)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert error_of(chunks[-1])["message"] == "Internal error in stubborn rail: timed out after 1s"
    assert "".join(chunks[:-1]) == ""


# asyncio applications: their coroutines run on their own loop


def _run_asyncio(main: Any) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(main(), ASYNCIO_GUARD_S)

    return asyncio.run(guarded())


def test_an_asyncio_action_runs_on_the_applications_loop_with_its_context() -> None:
    seen: dict[str, Any] = {}

    async def moderate(bot_message: str) -> bool:
        await asyncio.sleep(0.001)  # any asyncio API: aiohttp, AsyncOpenAI, asyncpg
        seen["loop"] = asyncio.get_running_loop()
        seen["request_id"] = REQUEST_ID.get()
        return "SECRET" not in bot_message

    async def main() -> tuple[list[str], list[str]]:
        seen["app_loop"] = asyncio.get_running_loop()
        REQUEST_ID.set("req-42")
        rails = make_rails(
            ["all good", "a SECRET here"], {"moderate": moderate}, flows=["moderate"]
        )
        good = [c async for c in rails.stream_async(messages=USER)]
        blocked = [c async for c in rails.stream_async(messages=USER)]
        return good, blocked

    good, blocked = _run_asyncio(main)
    assert "".join(good) == "all good", f"the asyncio action failed closed: {good[-1]}"
    assert error_of(blocked[-1])["code"] == "content_blocked"
    assert seen["loop"] is seen["app_loop"]
    assert seen["request_id"] == "req-42"


def test_an_asyncio_generator_streams_through_the_rails() -> None:
    async def tokens() -> AsyncIterator[str]:
        for word in ["from ", "an ", "asyncio ", "generator"]:
            await asyncio.sleep(0.001)
            yield word

    async def main() -> list[str]:
        rails = make_rails(["unused"], {"ok": lambda: True}, flows=["ok"], chunk_size=2)
        return [c async for c in rails.stream_async(messages=USER, generator=tokens())]

    chunks = _run_asyncio(main)
    assert "".join(chunks) == "from an asyncio generator"


def test_generate_async_runs_asyncio_actions_on_the_applications_loop() -> None:
    async def moderate(bot_message: str) -> bool:
        await asyncio.sleep(0.001)
        return True

    async def main() -> Any:
        rails = make_rails(["fine words"], {"moderate": moderate}, flows=["moderate"])
        return await rails.generate_async(messages=USER)

    assert _run_asyncio(main) == {"role": "assistant", "content": "fine words"}


def test_a_rail_timeout_cancels_the_asyncio_action() -> None:
    events: list[str] = []

    async def hung(bot_message: str) -> bool:
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return True

    async def main() -> tuple[list[str], list[str]]:
        rails = make_rails(["a b"], {"hung": hung}, flows=["hung"], rail_timeout_s=0.05)
        chunks = [c async for c in rails.stream_async(messages=USER)]
        return chunks, list(events)  # before asyncio.run's teardown cancels what is left

    chunks, seen = _run_asyncio(main)
    assert error_of(chunks[-1])["message"] == "Internal error in hung rail: timed out after 0.05s"
    assert seen == ["cancelled"], "the asyncio action ran on after its rail gave up"


def test_cancelling_the_asyncio_caller_cancels_the_asyncio_action_it_waits_on() -> None:
    events: list[str] = []
    started: list[asyncio.Event] = []

    async def hung(bot_message: str) -> bool:
        events.append("started")
        started[0].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return True

    async def main() -> None:
        rails = make_rails(["a b"], {"hung": hung}, flows=["hung"], rail_timeout_s=None)

        async def consume() -> None:
            async for _chunk in rails.stream_async(messages=USER):
                pass

        started.append(asyncio.Event())
        task = asyncio.create_task(consume())
        await started[0].wait()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done, "cancelling the asyncio caller did not end its stream"
        # Before asyncio.run's teardown, which would cancel a leftover action anyway:
        assert events == ["started", "cancelled"], "the action ran on after its caller left"

    _run_asyncio(main)


async def test_a_sync_action_declared_non_blocking_runs_on_the_loop_and_still_fails_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """@action(blocking=False) skips the worker thread (for pure computation); a verdict it
    returns after its deadline still does not count."""
    from railstream import action

    seen: list[threading.Thread] = []

    @action(blocking=False)
    def regex_check(bot_message: str) -> bool:
        seen.append(threading.current_thread())
        return True

    @action(blocking=False)
    def overruns(bot_message: str) -> bool:
        autojump_clock.jump(5)  # as if it had computed for 5 s, past its 1 s timeout
        return True

    fine = make_rails(["a b c"], {"regex_check": regex_check}, flows=["regex check"])
    late = make_rails(["a b c"], {"overruns": overruns}, flows=["overruns"], rail_timeout_s=1)
    with trio.fail_after(HANG_GUARD_S):
        assert "".join(await collect(fine)) == "a b c"
        chunks = await collect(late)
    assert seen
    assert all(t is threading.current_thread() for t in seen)
    assert error_of(chunks[-1])["message"] == "Internal error in overruns rail: timed out after 1s"


async def test_a_sync_action_that_returns_a_coroutine_has_it_awaited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A plain ``def`` decorator around an async action (as NeMo users write them) returns a
    coroutine from a sync call: it is awaited, as NeMo awaits it, not refused."""

    async def no_secrets(bot_message: str) -> bool:
        await trio.sleep(0.01)
        return "secret" not in bot_message

    def logged(fn: Any) -> Any:
        def wrapper(bot_message: str) -> Any:
            return fn(bot_message)  # a coroutine, returned from a sync call

        return wrapper

    rails = make_rails(
        ["a plain reply, then a secret"], {"check": logged(no_secrets)}, flows=["check"]
    )
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert error_of(chunks[-1])["code"] == "content_blocked"
    assert not any("secret" in c for c in chunks[:-1])
