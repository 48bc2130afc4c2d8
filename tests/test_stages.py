"""Each stage alone, driven through its own channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from railstream.stages import (
    UsageLedger,
    WindowBuffer,
    run_buffering,
    run_generation,
    run_rails,
    run_usage,
)
from railstream.stages._errors import GenerationError
from railstream.stages._messages import (
    EndOfTokens,
    GenerationEnded,
    GenerationEvent,
    GenerationFailed,
    LLMCall,
    LogRecord,
    Passthrough,
    RailRun,
    Released,
    StreamEnded,
    StreamError,
    StreamFailed,
    TokenBatch,
    Usage,
    Window,
)
from railstream.stages.generation import ChatRequest, ScriptedProvider, split_tokens
from railstream.stages.rails import Action, ActionRail, RailContext, Verdict, WindowEvaluator

from .helpers import HANG_GUARD_S, BatchProvider

REQUEST = ChatRequest(messages=({"role": "user", "content": "say something"},))


async def drain(channel: trio.MemoryReceiveChannel[Any]) -> list[Any]:
    return [item async for item in channel]


# generation


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello world", ["Hello ", "world"]),
        ("a  b\n", ["a  ", "b\n"]),
        ("  lead", ["  lead"]),
        ("   ", ["   "]),
    ],
)
def test_scripted_tokens_keep_their_whitespace(text: str, tokens: list[str]) -> None:
    assert split_tokens(text) == tokens
    assert "".join(split_tokens(text)) == text


async def test_generation_sends_batches_then_the_end_and_records_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = ScriptedProvider(
        model="m", parameters={"responses": ["one two three"], "delay_ms": 5}
    )
    out_send, out_recv = trio.open_memory_channel[GenerationEvent](100)
    usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
    with trio.fail_after(HANG_GUARD_S):
        await run_generation(provider, REQUEST, out_send, usage_send)
        events = await drain(out_recv)
        (record,) = await drain(usage_recv)
    assert events == [
        TokenBatch(("one ",)),
        TokenBatch(("two ",)),
        TokenBatch(("three",)),
        GenerationEnded("stop"),
    ]
    assert isinstance(record, LLMCall)
    assert (record.status, record.streamed_tokens, record.usage) == (
        "completed",
        3,
        Usage(prompt_tokens=2, completion_tokens=3, total_tokens=5),
    )
    assert record.time_to_first_token is not None


async def test_generation_drops_empty_deltas(autojump_clock: trio.testing.MockClock) -> None:
    out_send, out_recv = trio.open_memory_channel[GenerationEvent](100)
    usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
    await run_generation(BatchProvider([["", "a"], [""], ["b", ""]]), REQUEST, out_send, usage_send)
    assert await drain(out_recv) == [
        TokenBatch(("a",)),
        TokenBatch(("b",)),
        GenerationEnded("stop"),
    ]
    (record,) = await drain(usage_recv)
    assert record.streamed_tokens == 2


async def test_generation_turns_provider_errors_into_a_failure_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Failing(BatchProvider):
        async def stream(self, request: Any, emit: Any) -> Any:
            await emit(["a"])
            raise GenerationError("stream ended mid-reply")

    class Buggy(BatchProvider):
        async def stream(self, request: Any, emit: Any) -> Any:
            raise KeyError("choices")

    for provider, message in [
        (Failing([]), "stream ended mid-reply"),
        (Buggy([]), "KeyError: 'choices'"),
    ]:
        out_send, out_recv = trio.open_memory_channel[GenerationEvent](100)
        usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
        await run_generation(provider, REQUEST, out_send, usage_send)
        events = await drain(out_recv)
        assert events[-1] == GenerationFailed(
            StreamError(
                message=message, type="generation_error", param=None, code="generation_failed"
            )
        )
        (record,) = await drain(usage_recv)
        assert record.status == "failed"


async def test_cancelled_generation_still_records_its_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = ScriptedProvider(
        model="m", parameters={"responses": ["a b c d e f"], "delay_ms": 10}
    )
    out_send, out_recv = trio.open_memory_channel[GenerationEvent](100)
    usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
    with trio.move_on_after(0.025):
        await run_generation(provider, REQUEST, out_send, usage_send)
    assert await drain(out_recv) == [TokenBatch(("a ",)), TokenBatch(("b ",))]
    (record,) = await drain(usage_recv)
    assert (record.status, record.streamed_tokens, record.usage) == ("cancelled", 2, Usage())


async def test_a_cut_off_call_is_recorded_with_the_counts_its_provider_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A local model counts its tokens as it goes; cancelled, it returns no outcome, so the
    # record takes the last counts it reported, not None.
    class Counting(BatchProvider):
        async def stream(self, request: Any, emit: Any) -> Any:
            emit.report_usage(Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4))
            await emit(["a"])
            await trio.sleep_forever()

    out_send, out_recv = trio.open_memory_channel[GenerationEvent](100)
    usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
    with trio.move_on_after(1):
        await run_generation(Counting([]), REQUEST, out_send, usage_send)
    assert await drain(out_recv) == [TokenBatch(("a",))]
    (record,) = await drain(usage_recv)
    assert (record.status, record.usage) == (
        "cancelled",
        Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    )


# buffering


async def test_buffering_flushes_the_last_window_before_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = StreamError(
        message="dropped", type="generation_error", param=None, code="generation_failed"
    )
    in_send, in_recv = trio.open_memory_channel[GenerationEvent](10)
    out_send, out_recv = trio.open_memory_channel[Any](10)
    for event in [TokenBatch(("a", "b", "c")), GenerationFailed(error)]:
        in_send.send_nowait(event)
    await run_buffering(in_recv, out_send, buffer=WindowBuffer(2, 0), stream_first=True)
    assert await drain(out_recv) == [
        Passthrough("abc"),
        Window.of(("a", "b"), index=0, start=0),
        Window.of(("c",), index=1, start=2),
        EndOfTokens("error", error),
    ]


async def test_buffering_without_rails_only_passes_tokens_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    in_send, in_recv = trio.open_memory_channel[GenerationEvent](10)
    out_send, out_recv = trio.open_memory_channel[Any](10)
    for event in [TokenBatch(("a",)), TokenBatch(("b",)), GenerationEnded("length")]:
        in_send.send_nowait(event)
    await run_buffering(in_recv, out_send, buffer=None, stream_first=False)
    # Batches queued together move on together.
    assert await drain(out_recv) == [Passthrough("ab"), EndOfTokens("length")]


# rails


def evaluator(
    verdicts: Sequence[bool], usage: trio.MemorySendChannel[LogRecord]
) -> WindowEvaluator:
    answers = iter(verdicts)

    def rail(bot_message: str) -> bool:
        return next(answers)

    context = RailContext(user_message="u", config=None, record=usage.send)
    return WindowEvaluator(
        [ActionRail("my rail", Action.from_callable(rail, "my_rail"))],
        parallel=False,
        timeout=None,
        context=context,
    )


def windows(*texts: tuple[str, ...], context: int) -> list[Window]:
    buffer = WindowBuffer(len(texts[0]), context)
    out = []
    for tokens in texts:
        out += buffer.push(tokens[context if out else 0 :])
    return out


async def run_two_windows(verdicts: list[bool], max_checks: int) -> tuple[list[Any], list[Any]]:
    """Windows (a b c) and (c d e), context 1, through the rails stage: outputs and log records."""
    usage_send, usage_recv = trio.open_memory_channel[LogRecord](10)
    in_send, in_recv = trio.open_memory_channel[Any](10)
    out_send, out_recv = trio.open_memory_channel[Any](10)
    for event in [*windows(("a", "b", "c"), ("c", "d", "e"), context=1), EndOfTokens("stop")]:
        in_send.send_nowait(event)
    with usage_send:
        await run_rails(
            in_recv,
            out_send,
            evaluator=evaluator(verdicts, usage_send),
            stream_first=False,
            context_size=1,
            max_concurrent_checks=max_checks,
        )
    return await drain(out_recv), await drain(usage_recv)


async def test_rails_stage_holds_the_context_tail_until_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outputs, records = await run_two_windows([True, True], max_checks=2)
    assert outputs == [Released("ab"), Released("cd"), Released("e"), StreamEnded("stop")]
    # The two checks overlap (in worker threads), so they may end in either order.
    runs = sorted((r.rail, r.window_index, r.verdict) for r in records if isinstance(r, RailRun))
    assert runs == [("my rail", 0, "pass"), ("my rail", 1, "pass")]


async def test_rails_stage_block_releases_nothing_of_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outputs, _ = await run_two_windows([True, False], max_checks=1)
    assert outputs == [
        Released("ab"),
        StreamFailed(StreamError.blocked("my rail"), "content_filter"),
    ]


async def test_rails_stage_passes_a_generation_error_on_after_the_checked_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = StreamError(message="x", type="generation_error", param=None, code="generation_failed")
    in_send, in_recv = trio.open_memory_channel[Any](10)
    out_send, out_recv = trio.open_memory_channel[Any](10)
    in_send.send_nowait(Passthrough("ab"))
    in_send.send_nowait(EndOfTokens("error", error))
    await run_rails(
        in_recv,
        out_send,
        evaluator=None,
        stream_first=True,
        context_size=0,
        max_concurrent_checks=1,
    )
    assert await drain(out_recv) == [Released("ab"), StreamFailed(error, "error")]


class SlowThenBroken:
    """Checks window 0 in 2 s and window 1 in 1 s; window 2's check fails in the stage itself
    (not in a rail, which the evaluator would fail closed) at once."""

    async def evaluate(self, window: Window) -> Verdict:
        if window.index == 2:
            raise RuntimeError("the stage broke")
        await trio.sleep(2 - window.index)
        return Verdict()


async def test_a_check_that_fails_in_the_stage_ends_the_stream_only_after_the_windows_ahead_of_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The third check fails first, while the two before it still run: their windows are
    released (they passed), then the failure ends the stream, as one-by-one checking would."""
    in_send, in_recv = trio.open_memory_channel[Any](10)
    out_send, out_recv = trio.open_memory_channel[Any](10)
    for event in [*windows(("a", "b"), ("c", "d"), ("e", "f"), context=0), EndOfTokens("stop")]:
        in_send.send_nowait(event)
    with trio.fail_after(HANG_GUARD_S), pytest.raises(BaseExceptionGroup) as failed:
        await run_rails(
            in_recv,
            out_send,
            evaluator=SlowThenBroken(),  # type: ignore[arg-type]
            stream_first=False,
            context_size=0,
            max_concurrent_checks=3,
        )
    assert failed.group_contains(RuntimeError, match="the stage broke")
    assert await drain(out_recv) == [Released("ab"), Released("cd")]


# usage


async def test_usage_stage_records_until_every_sender_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ledger = UsageLedger()
    send, recv = trio.open_memory_channel[LogRecord](2)
    call = LLMCall(
        task="general",
        model=None,
        provider="p",
        usage=Usage(),
        streamed_tokens=0,
        status="completed",
        started_at=0,
        finished_at=1,
        duration=1,
    )
    judge = LLMCall(
        task="self_check_output",
        model=None,
        provider="p",
        usage=Usage(prompt_tokens=3),
        streamed_tokens=0,
        status="completed",
        started_at=0,
        finished_at=1,
        duration=1,
    )
    other = send.clone()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_usage, recv, ledger)
        with send:
            await send.send(judge)
        with other:
            await other.send(call)
    assert ledger.llm_calls == [judge, call]
    assert ledger.main_call() is call
