"""A released chunk's latency (issue 16): how long its oldest and its newest token were inside
railstream, from their arrival from the model to the chunk's hand-over. Held windows make the
oldest token wait for the window; a slow consumer makes every token wait. Virtual time."""

from __future__ import annotations

import tracemalloc
from typing import Any

import trio

from railstream import ChunkLatency, LLMRails
from railstream.stages._buffering import WindowBuffer, run_buffering
from railstream.stages._messages import (
    BufferEvent,
    EndOfTokens,
    GenerationEnded,
    GenerationEvent,
    OutputEvent,
    Passthrough,
    Released,
    TokenBatch,
    Window,
)
from railstream.stages.rails import run_rails

from .helpers import HANG_GUARD_S, USER, BatchProvider, rails_on

TOKENS = ["a ", "b ", "c ", "d ", "e ", "f ", "g "]


def passes(bot_message: str) -> bool:
    return True


def guarded(provider: Any, **kw: Any) -> LLMRails:
    return rails_on(provider, {"passes": passes}, flows=["passes"], **kw)


async def test_a_held_chunks_oldest_token_waited_for_its_window_and_its_newest_less(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Token i arrives at t = i + 1 s; windows of 4 with 1 of context, held for their check (an
    instant rail). Window 1 (a-d) is checked at t = 4 and releases a-c: a arrived 3 s before,
    c 1 s before. Window 2 (d-g) at t = 7 releases d-f, as old. The tail (g) goes at the end,
    the moment it arrived."""
    rails = guarded(BatchProvider([[t] for t in TOKENS], delay=1.0), chunk_size=4, context_size=1)
    seen: list[tuple[str, ChunkLatency | None]] = []
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            async for chunk in stream:
                seen.append((chunk, stream.last_chunk_latency()))
    assert seen == [
        ("a b c ", ChunkLatency(oldest_s=3.0, newest_s=1.0)),
        ("d e f ", ChunkLatency(oldest_s=3.0, newest_s=1.0)),
        ("g ", ChunkLatency(oldest_s=0.0, newest_s=0.0)),
    ]


async def test_batches_coalesced_on_the_way_keep_their_first_and_last_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow consumer: every token released ahead of its check (stream_first) waits in the
    channels, and is handed over with those queued behind it, in one chunk. That chunk's oldest
    token is the first one queued, its newest the last one; neither age is lost in the merging."""
    provider = BatchProvider([[t] for t in TOKENS], delay=1.0)
    rails = guarded(provider, chunk_size=4, context_size=1, stream_first=True)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            first = await anext(stream)
            assert (first, stream.last_chunk_latency()) == ("a ", ChunkLatency(0.0, 0.0))
            await trio.sleep(20)  # t = 21: every token has arrived (b at 2 ... g at 7)
            rest = await anext(stream)
            latency = stream.last_chunk_latency()
    assert rest.startswith("b ")
    assert len(rest) > 2, rest  # several tokens in one chunk
    last = TOKENS.index(rest[-2:])
    assert latency == ChunkLatency(oldest_s=21.0 - 2, newest_s=21.0 - (last + 1))


async def test_no_latency_before_a_chunk() -> None:
    rails = guarded(BatchProvider([["a "]]))
    async with rails.stream_async(messages=USER) as stream:
        assert stream.last_chunk_latency() is None
        assert [chunk async for chunk in stream] == ["a "]


def test_a_held_window_knows_when_the_tokens_it_releases_first_and_last_arrived() -> None:
    """One token per batch, token p arriving at time p. A held window's release begins at its
    start and ends before its context tail, or at the end runs from the tail to its last
    token: those four arrivals are exact; any other position answers no later than its token
    arrived (an age is never understated)."""
    size, context = 8, 3
    buffer = WindowBuffer(chunk_size=size, context_size=context)
    windows: list[Window] = []
    for p in range(100):
        windows += buffer.push([f"t{p}"], float(p), float(p))
    last = buffer.finish()
    windows += [last] if last is not None else []
    assert windows[-1].end == 100
    for w in windows:
        for p in {w.start, w.end - context - 1, w.end - context, w.end - 1}:
            assert w.arrived_at(p) == float(p)
        for p in range(w.start, w.end):
            arrived = w.arrived_at(p)
            assert arrived is not None
            assert arrived <= p


def test_a_long_held_reply_keeps_one_windows_arrivals_not_the_whole_replys() -> None:
    """Memory per stream stays bounded: after 100,000 tokens (one per batch) the buffer holds
    what it did after 1,000, give or take a window's worth."""
    buffer = WindowBuffer(chunk_size=200, context_size=50)

    def feed(start: int, count: int) -> None:
        for p in range(start, start + count):
            buffer.push(["t"], float(p), float(p))

    tracemalloc.start()
    try:
        feed(0, 1_000)
        before = tracemalloc.get_traced_memory()[0]
        feed(1_000, 99_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 99,000 arrivals kept would be over 1.5 MB. (tracemalloc shows some 50 KB "held" that
    # sys.getallocatedblocks() does not: small blocks it loses track of as they are reused.)
    assert grown < 400_000, grown


async def test_batches_queued_together_keep_the_last_ones_arrival_and_never_understate_an_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Five batches waiting when the buffering stage reads them are cut as one: the first token
    keeps its arrival, the last its own, those between are taken as old as the first."""
    inbox_send, inbox = trio.open_memory_channel[GenerationEvent](8)
    outbox, out = trio.open_memory_channel[BufferEvent](8)
    for p, token in enumerate("abcde"):
        inbox_send.send_nowait(TokenBatch((token,), float(p + 1)))
    inbox_send.send_nowait(GenerationEnded("stop"))
    inbox_send.close()
    with trio.fail_after(HANG_GUARD_S):
        await run_buffering(inbox, outbox, buffer=WindowBuffer(4, 1), stream_first=False)
    windows = [event async for event in out if isinstance(event, Window)]
    assert [w.tokens for w in windows] == [("a", "b", "c", "d"), ("d", "e")]
    assert [windows[0].arrived_at(p) for p in range(4)] == [1.0, 1.0, 1.0, 1.0]
    assert [windows[1].arrived_at(p) for p in (3, 4)] == [1.0, 5.0]


async def test_passthroughs_queued_together_are_released_with_the_first_and_last_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Text released ahead of its check (stream_first) that waits for the rails stage goes on
    as one chunk: oldest the first passthrough's first token, newest the last one's last."""
    inbox_send, inbox = trio.open_memory_channel[BufferEvent](8)
    outbox, out = trio.open_memory_channel[OutputEvent](8)
    for p, token in enumerate("abc"):
        inbox_send.send_nowait(Passthrough(token, float(p + 1), float(p + 1.5)))
    inbox_send.send_nowait(EndOfTokens("stop"))
    with trio.fail_after(HANG_GUARD_S):
        await run_rails(
            inbox,
            outbox,
            evaluator=None,
            stream_first=True,
            context_size=0,
            max_concurrent_checks=1,
        )
    released = [event async for event in out if isinstance(event, Released)]
    assert [(r.text, r.oldest_at, r.newest_at) for r in released] == [("abc", 1.0, 3.5)]


def test_an_asyncio_consumer_reads_a_chunks_latency_too() -> None:
    """From asyncio (trio in guest mode) the latency reads the pipeline's clock: a consumer
    that waits 0.2 s (real time) before its next chunk, the tokens of which come 10 ms apart,
    sees them all well over 0.1 s old."""
    import asyncio

    provider = BatchProvider([["a "], ["b "], ["c "]], delay=0.01)
    rails = guarded(provider, chunk_size=4, context_size=1, stream_first=True)

    async def main() -> tuple[ChunkLatency | None, ChunkLatency | None]:
        async with rails.stream_async(messages=USER) as stream:
            await anext(stream)
            first = stream.last_chunk_latency()
            await asyncio.sleep(0.2)  # the rest arrives meanwhile, and waits
            await anext(stream)
            return first, stream.last_chunk_latency()

    first, later = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))
    assert first is not None
    assert later is not None
    assert later.oldest_s >= later.newest_s > 0.1
