"""The application's code raising a ``BaseException`` that is not an ``Exception``
(``func_timeout.FunctionTimedOut``, a library's ``SystemExit``, a stray ``GeneratorExit``):
it fails its own stream closed and nothing else, under trio, under asyncio and in the server;
``KeyboardInterrupt`` passes through as it is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from railstream import LLMRails, RailsConfig, action

from .helpers import HANG_GUARD_S, USER, make_rails, scripted_yaml
from .server_process import ServerProcess

ASYNCIO_GUARD_S = 30  # real seconds: asyncio has no autojump clock


class FunctionTimedOut(BaseException):
    """As ``func_timeout`` raises it: a BaseException, so that ``except Exception`` misses it."""


RAISED: dict[str, Callable[[], BaseException]] = {
    "FunctionTimedOut": lambda: FunctionTimedOut("took too long"),
    "SystemExit": lambda: SystemExit(3),
    "GeneratorExit": lambda: GeneratorExit("stray"),
}


def error_of(chunk: str) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(chunk)["error"]
    return error


def failing_rail(kind: str, raised: str) -> Any:
    """A rail of the given kind (async, sync in a thread, sync on the loop) that raises
    ``raised`` on a window holding "bad", and passes every other window."""

    def decide(bot_message: str) -> bool:
        if "bad" in bot_message:
            raise RAISED[raised]()
        return True

    if kind == "sync":
        return decide
    if kind == "inline":
        return action(blocking=False)(decide)

    async def rail(bot_message: str) -> bool:
        await trio.sleep(0.01)
        return decide(bot_message)

    return rail


async def bare(rails: LLMRails, **kwargs: Any) -> list[Any]:
    """A bare ``async for``: its pipeline is a system task."""
    kwargs.setdefault("messages", USER)
    return [chunk async for chunk in rails.stream_async(**kwargs)]


@pytest.mark.parametrize("raised", sorted(RAISED))
@pytest.mark.parametrize("kind", ["async", "sync", "inline"])
async def test_a_rail_raising_a_base_exception_fails_its_stream_closed_and_nothing_else(
    autojump_clock: trio.testing.MockClock, kind: str, raised: str
) -> None:
    """Two bare ``async for`` streams side by side: the one whose rail raises ends with that
    rail's failure (its log says so), the clean one streams its whole reply, and the trio run
    goes on (no TrioInternalError)."""
    actions = {"check": failing_rail(kind, raised)}
    bad = make_rails(["a bad reply here"], actions, flows=["check"], chunk_size=2)
    clean = make_rails(["a clean reply here"], actions, flows=["check"], chunk_size=2)
    results: dict[str, list[Any]] = {}

    async def read(name: str, rails: LLMRails) -> None:
        results[name] = await bare(rails)

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, "bad", bad)
            nursery.start_soon(read, "clean", clean)
    assert "".join(results["clean"]) == "a clean reply here"
    error = error_of(results["bad"][-1])
    assert (error["code"], error["param"]) == ("rail_execution_failure", "check")
    assert error["message"].startswith(f"Internal error in check rail: {raised}")


async def test_a_generator_raising_a_base_exception_fails_its_stream_and_nothing_else(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def tokens(fail: bool) -> AsyncIterator[str]:
        yield "first "
        await trio.sleep(0.01)
        if fail:
            raise FunctionTimedOut("generator took too long")
        yield "second"

    rails = make_rails(["unused"])
    results: dict[str, list[Any]] = {}

    async def read(name: str, fail: bool) -> None:
        results[name] = await bare(rails, generator=tokens(fail))

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, "bad", True)
            nursery.start_soon(read, "clean", False)
    assert "".join(results["clean"]) == "first second"
    assert results["bad"][0] == "first "
    error = error_of(results["bad"][-1])
    assert (error["type"], error["code"]) == ("generation_error", "generation_failed")
    assert error["message"] == "FunctionTimedOut: generator took too long"


async def test_an_input_rail_raising_system_exit_fails_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = json.loads(scripted_yaml(["the model's reply"]))
    config["rails"]["input"] = {"flows": ["check user message"]}
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(config)))

    async def check_user_message(user_message: str) -> bool:
        await trio.sleep(0.01)
        raise SystemExit(2)

    rails.register_action(check_user_message, "check_user_message")
    with trio.fail_after(HANG_GUARD_S):
        chunks = await bare(rails)
    error = error_of(chunks[-1])
    assert (error["code"], error["message"]) == (
        "rail_execution_failure",
        "Internal error in check user message rail: SystemExit: 2",
    )
    assert len(chunks) == 1, "the model was asked past a failed input rail"


async def test_a_rail_cut_off_inside_its_own_nursery_is_not_logged_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A rail that opens a nursery of its own, cut off by a parallel rail's block, raises a
    group of trio's Cancelled: that is the cancellation passing through, not the rail failing."""

    async def block(bot_message: str) -> bool:
        await trio.sleep(1)
        return False

    async def fan_out(bot_message: str) -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 10)
            await trio.sleep(10)
        return True

    rails = make_rails(
        ["a b c"], {"block": block, "fan_out": fan_out}, flows=["block", "fan out"], parallel=True
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [chunk async for chunk in stream]
    assert error_of(chunks[-1])["code"] == "content_blocked"
    verdicts = {r.name: r.additional_info["verdict"] for r in stream.log.activated_rails}
    assert verdicts == {"block": "block", "fan out": "cancelled"}


def test_keyboard_interrupt_from_a_rail_passes_through() -> None:
    """Ctrl-C means stop the program: a rail's KeyboardInterrupt is not its failure."""

    async def interrupted(bot_message: str) -> bool:
        await trio.lowlevel.checkpoint()
        raise KeyboardInterrupt

    rails = make_rails(["a b c"], {"check": interrupted}, flows=["check"])

    async def main() -> list[Any]:
        async with rails.stream_async(messages=USER) as stream:
            return [chunk async for chunk in stream]

    with pytest.raises((KeyboardInterrupt, BaseExceptionGroup)) as raised:
        trio.run(main)  # a stream that ended with the rail's failure would return its chunks
    exc = raised.value
    if isinstance(exc, BaseExceptionGroup):
        assert exc.subgroup(KeyboardInterrupt) is not None, repr(exc)
    else:
        assert isinstance(exc, KeyboardInterrupt), repr(exc)


# asyncio: the application's loop, and every other stream on it, go on


def _run_asyncio(main: Any) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(main(), ASYNCIO_GUARD_S)

    return asyncio.run(guarded())


@pytest.mark.parametrize("raised", ["SystemExit", "FunctionTimedOut"])
def test_under_asyncio_a_rail_raising_a_base_exception_fails_only_its_stream(raised: str) -> None:
    """An asyncio action raising SystemExit would stop the application's asyncio loop (asyncio
    re-raises a task's SystemExit into it); another stream on the same loop (its trio guest
    run) would be cut off. Neither happens: that stream alone fails closed."""
    gate = asyncio.Event()

    async def check(bot_message: str) -> bool:
        await gate.wait()  # both streams are running when the bad one fails
        if "bad" in bot_message:
            raise RAISED[raised]()
        return True

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        bad = make_rails(["a bad reply"], {"check": check}, flows=["check"], chunk_size=2)
        clean = make_rails(["a clean reply"], {"check": check}, flows=["check"], chunk_size=2)

        async def read(rails: LLMRails) -> list[Any]:
            return [chunk async for chunk in rails.stream_async(messages=USER)]

        tasks = [asyncio.create_task(read(bad)), asyncio.create_task(read(clean))]
        await asyncio.sleep(0.05)
        gate.set()
        first, second = await asyncio.gather(*tasks)
        later = await read(clean)  # the loop's guest run still serves
        return first, second, later

    bad_chunks, clean_chunks, later = _run_asyncio(main)
    assert "".join(clean_chunks) == "a clean reply"
    assert "".join(later) == "a clean reply"
    error = error_of(bad_chunks[-1])
    assert error["code"] == "rail_execution_failure"
    assert error["message"].startswith(f"Internal error in check rail: {raised}")


def test_under_asyncio_a_generator_raising_system_exit_fails_only_its_stream() -> None:
    async def tokens(fail: bool) -> AsyncIterator[str]:
        yield "first "
        await asyncio.sleep(0.01)
        if fail:
            raise SystemExit(4)
        yield "second"

    async def main() -> tuple[list[Any], list[Any]]:
        rails = make_rails(["unused"])

        async def read(fail: bool) -> list[Any]:
            return [c async for c in rails.stream_async(messages=USER, generator=tokens(fail))]

        bad, clean = await asyncio.gather(read(True), read(False))
        return bad, clean

    bad, clean = _run_asyncio(main)
    assert "".join(clean) == "first second"
    assert error_of(bad[-1])["message"] == "SystemExit: 4"


# the server: one request's rail cannot take the process down

SYSTEM_EXIT_ACTIONS = """
from railstream import action


@action()
def check_reply(bot_message):
    if "bad" in bot_message:
        raise SystemExit(1)  # a library that calls sys.exit() on an error
    return True
"""


def test_the_server_survives_a_request_whose_rail_raises_system_exit(tmp_path: Path) -> None:
    folder = tmp_path / "configs" / "exits"
    folder.mkdir(parents=True)
    config = json.loads(scripted_yaml(["a bad reply", "a clean reply"], flows=["check reply"]))
    (folder / "config.yml").write_text(json.dumps(config))
    (folder / "actions.py").write_text(SYSTEM_EXIT_ACTIONS)
    server = ServerProcess(tmp_path / "configs")
    try:
        body = {"config_id": "exits", "messages": USER}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            first = client.post("/v1/chat/completions", json=body)
            second = client.post("/v1/chat/completions", json=body)
        assert server.process.poll() is None, server.log()
    finally:
        server.stop()
    assert first.status_code == 200, first.text
    assert first.json()["guardrails"]["error"]["code"] == "rail_execution_failure", first.text
    assert "SystemExit: 1" in first.json()["guardrails"]["error"]["message"]
    assert second.status_code == 200, second.text
    assert second.json()["choices"][0]["message"]["content"] == "a clean reply", second.text
