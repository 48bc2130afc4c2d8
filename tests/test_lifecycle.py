"""A stream's life is its consumer's: blocks, closes and cancellations stop the model at once,
and nothing of a stream runs on after the scope or task that uses it.

Each test here is written so that the regression it is named for fails it by an assertion,
not by its hang guard: models go silent (for 1,000 virtual seconds) right where a missing
cancel would otherwise be hidden by the next token.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from railstream import StreamState, StreamStateError

from .helpers import HANG_GUARD_S, USER, SilentAfter, rails_on
from .openai_server import FakeOpenAI, Script
from .test_openai_provider import config

SILENCE = 1000.0  # virtual seconds a model stays silent: far beyond any reasonable reaction


def no_secret(bot_message: str) -> bool:
    return "SECRET" not in bot_message


async def test_a_block_stops_a_model_that_went_silent_after_the_forbidden_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A block must cancel generation at once, not when the model next speaks."""
    model = SilentAfter(["a ", "b ", "SECRET ", "c "], silence=SILENCE)
    rails = rails_on(
        model, {"no_secret": no_secret}, flows=["no secret"], chunk_size=4, context_size=1
    )
    start = trio.current_time()
    with trio.move_on_after(5) as waited:
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert not waited.cancelled_caught, (
        "the block did not cancel the model: 5 s later, the stream was still waiting for it"
    )
    assert json.loads(chunks[-1])["error"]["code"] == "content_blocked"
    assert model.cancelled_at is not None
    assert model.cancelled_at - start < 1
    assert stream.log.llm_calls[0].status == "cancelled"


async def test_the_token_channel_bounds_how_far_a_model_runs_ahead_of_a_stalled_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Backpressure: with no rails and a consumer that stops reading after one chunk, a model
    of 10,000 tokens (which cannot finish meanwhile) is paused after a fixed lookahead."""
    model = SilentAfter([f"t{i} " for i in range(10_000)], delay=0.001)
    rails = rails_on(model)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            await stream.__anext__()
            await trio.sleep(100)  # 100,000 token times: the whole reply, were it unbounded
            paused_at = model.produced
            await trio.sleep(100)
            assert model.produced == paused_at
    # One token per batch: the channels hold tokens 16 + windows 4 + output 1, and each of the
    # three stages one more in hand, plus the chunk read. A literal, not the constants under
    # test: an unbounded (or enlarged) channel must fail this.
    assert paused_at <= 26, f"the model ran {paused_at} tokens ahead of a stalled consumer"


async def test_a_consumer_task_cancelled_between_chunks_stops_the_model_with_no_async_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bare ``async for``: the pipeline is bound to the task iterating it. The stream stays
    referenced (so ``__del__`` cannot be what stops it) and the consumer is cancelled while
    it is busy with a chunk, not while it waits for one."""
    model = SilentAfter([f"t{i} " for i in range(10_000)], delay=0.001)
    rails = rails_on(model)
    kept: list[Any] = []

    async def consume() -> None:
        stream = rails.stream_async(messages=USER)
        kept.append(stream)
        async for _chunk in stream:
            await trio.sleep(10)  # busy with the chunk: cancelled here, between chunks

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        cancelled = trio.current_time()
        await trio.sleep(100)
    assert model.cancelled_at is not None, "the pipeline outlived its consumer task"
    assert model.cancelled_at - cancelled < 1
    assert kept[0].statistics().tokens.open_send_channels == 0


async def test_a_consumer_cancelled_between_chunks_inside_async_with_stops_the_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With ``async with``, the pipeline runs in the caller's scope: a timeout that fires
    while the consumer sleeps between chunks cancels it too, and the task itself goes on."""
    model = SilentAfter([f"t{i} " for i in range(10_000)], delay=0.001)
    rails = rails_on(model)
    with trio.fail_after(HANG_GUARD_S):
        with trio.move_on_after(1):
            async with rails.stream_async(messages=USER) as stream:
                async for _chunk in stream:
                    await trio.sleep(10)
        after = trio.current_time()
        await trio.sleep(100)  # the task lives on: nothing of the stream may
    assert model.cancelled_at is not None
    assert model.cancelled_at <= after
    assert stream.state is StreamState.CLOSED


async def test_a_consumer_task_that_ends_without_closing_its_stream_stops_the_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = SilentAfter([f"t{i} " for i in range(10_000)], delay=0.001)
    rails = rails_on(model)
    kept: list[Any] = []

    async def read_one() -> None:
        stream = rails.stream_async(messages=USER)
        kept.append(stream)
        await stream.__anext__()  # and return, leaving the stream open

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_one)
        returned = trio.current_time()
        await trio.sleep(100)
    assert model.cancelled_at is not None, "the pipeline outlived the task that started it"
    assert model.cancelled_at - returned < 1
    assert kept[0].statistics().tokens.open_send_channels == 0


async def test_a_consumer_cancelled_between_chunks_closes_the_providers_http_stream(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The same, on the wire: the upstream server sees the client go away at once, rather
    than a connection held open by a pipeline paused on backpressure."""
    server = FakeOpenAI()
    await nursery.start(server.serve)
    server.script(Script(tokens=[f"t{i} " for i in range(5_000)], delay=0.01))
    from railstream import LLMRails

    rails = LLMRails(config(server.base_url))
    kept: list[Any] = []

    async def consume() -> None:
        stream = rails.stream_async(messages=USER)
        kept.append(stream)
        async for _chunk in stream:
            await trio.sleep(30)

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as consumers:
            consumers.start_soon(consume)
            await trio.sleep(2)
            consumers.cancel_scope.cancel()
        left = trio.current_time()
        with trio.move_on_after(5):
            await server.client_gone.wait()
        await rails.aclose()
    served = server.served[0]
    assert served.disconnected_at is not None, "the provider's HTTP stream was left open"
    assert served.disconnected_at - left < 1
    assert not served.finished


async def test_a_concurrent_aclose_ends_the_reader_with_an_error_not_a_normal_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    model = SilentAfter(["a ", "b "], silence=SILENCE)
    rails = rails_on(model)
    outcome: list[Any] = []

    async def read(stream: Any) -> None:
        try:
            async for chunk in stream:
                outcome.append(chunk)
        except StreamStateError as exc:
            outcome.append(exc)
        else:
            outcome.append("normal end")

    with trio.fail_after(HANG_GUARD_S):
        stream = rails.stream_async(messages=USER)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, stream)
            await trio.sleep(1)  # the reader has both tokens and waits for more
            await stream.aclose()
    assert outcome[:-1] == ["a ", "b "]
    assert isinstance(outcome[-1], StreamStateError), f"the reader saw {outcome[-1]!r}"
    assert str(outcome[-1]) == (
        "this stream was closed while it was being read: the reply is incomplete"
    )
    assert stream.state is StreamState.CLOSED
    with pytest.raises(StreamStateError, match=r"^this stream is closed$"):
        await stream.__anext__()


def test_an_asyncio_consumer_task_cancelled_between_chunks_stops_the_model() -> None:
    """Under asyncio the pipeline is bound to the asyncio task iterating it."""
    import asyncio

    model = SilentAfter([f"t{i} " for i in range(100_000)], delay=0.001)
    rails = rails_on(model)
    kept: list[Any] = []

    async def main() -> bool:
        first = asyncio.Event()

        async def consume() -> None:
            stream = rails.stream_async(messages=USER)
            kept.append(stream)
            async for _chunk in stream:
                first.set()
                await asyncio.sleep(30)  # busy with the chunk: cancelled here

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(500):  # the cancel crosses to trio at its next tick
            if model.cancelled_at is not None:
                return True
            await asyncio.sleep(0.01)
        return False

    assert asyncio.run(main()), "the pipeline outlived its asyncio consumer task"
