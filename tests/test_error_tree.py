"""The provider's exception reaches a ``generate_async`` caller as raised: a stall is a
ProviderTimeoutError, an unreachable server a ProviderConnectionError, a broken reply a
ProviderProtocolError, an error status a DownstreamError (all GenerationError subclasses).
Against the real test server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from railstream import LLMRails, StreamingHandler
from railstream.stages._errors import (
    DownstreamError,
    GenerationError,
    ProviderConnectionError,
    ProviderProtocolError,
    ProviderTimeoutError,
)

from .helpers import HANG_GUARD_S, USER
from .openai_server import FakeOpenAI, Script
from .test_openai_provider import config


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


async def generate(rails: LLMRails, *, streamed: bool) -> Any:
    if not streamed:
        return await rails.generate_async(messages=USER)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = StreamingHandler()

    async def drain() -> None:
        async for _ in handler:
            pass

    # The call runs in this task and its exception propagates from here, not from a nursery
    # (which would wrap it in an exception group).
    outcome: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        try:
            outcome.append(await rails.generate_async(messages=USER, streaming_handler=handler))
        except GenerationError as exc:
            outcome.append(exc)
    if isinstance(outcome[0], GenerationError):
        raise outcome[0]
    return outcome[0]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole-reply", "streamed"])
@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        pytest.param(
            Script(stall_before_headers=True),
            ProviderTimeoutError,
            r"^no (whole )?reply from the provider within",
            id="stall",
        ),
        pytest.param(
            Script(malformed_after=0, tokens=["a"]),
            ProviderProtocolError,
            r"^malformed",
            id="malformed",
        ),
        pytest.param(
            Script(status=401), DownstreamError, r"^Incorrect API key provided$", id="401"
        ),
    ],
)
async def test_a_provider_failure_reaches_the_caller_as_its_own_exception(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    script: Script,
    error: type[GenerationError],
    message: str,
    streamed: bool,
) -> None:
    server.script(script)
    async with LLMRails(config(server.base_url, params={"request_timeout_s": 30})) as rails:
        with trio.fail_after(HANG_GUARD_S), pytest.raises(error, match=message) as raised:
            await generate(rails, streamed=streamed)
    assert type(raised.value) is error


@pytest.mark.parametrize("streamed", [False, True], ids=["whole-reply", "streamed"])
async def test_an_unreachable_provider_is_a_connection_error(
    autojump_clock: trio.testing.MockClock, streamed: bool
) -> None:
    # A port nobody listens on: refused at once, retried, then given up.
    async with LLMRails(config("http://127.0.0.1:1/v1")) as rails:
        with trio.fail_after(HANG_GUARD_S), pytest.raises(ProviderConnectionError) as raised:
            await generate(rails, streamed=streamed)
    assert type(raised.value) is ProviderConnectionError


def railstream_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in railstream's modules (each module imported)."""
    import importlib
    import inspect

    from .test_layout import find_modules

    found: dict[str, type[BaseException]] = {}
    for name in find_modules():
        if name.endswith(".__main__"):  # runs the command line when imported
            continue
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("railstream"):
                found[obj.__qualname__] = obj
    return [found[k] for k in sorted(found)]


def test_every_exception_railstream_defines_is_a_railstream_error() -> None:
    """One tree: ``except railstream.RailstreamError`` catches whatever railstream raises of
    its own. Warnings are not raised but warned, and stay outside it."""
    from railstream import RailstreamError

    outside = [
        e.__qualname__
        for e in railstream_exceptions()
        if not issubclass(e, Warning) and not issubclass(e, RailstreamError)
    ]
    assert outside == []


def test_the_error_tree_is_drawn_whole_in_the_errors_module() -> None:
    from railstream.stages import _errors

    drawn = _errors.__doc__ or ""
    missing = [e.__qualname__ for e in railstream_exceptions() if e.__qualname__ not in drawn]
    assert missing == []
