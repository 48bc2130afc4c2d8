"""stream_async as users meet it: chunks, blocks, errors, cancellation, backpressure, the log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from railstream import (
    ConfigError,
    GenerationError,
    InvalidRequestError,
    LLMRails,
    RailNotFoundError,
    RailsConfig,
    StreamingNotSupportedError,
    StreamState,
    StreamStateError,
)
from railstream.runtime._pipeline import CHANNEL_CAPACITY
from railstream.stages._errors import DownstreamError
from railstream.stages.generation import ScriptedProvider

from .helpers import DEMO, HANG_GUARD_S, USER, collect, make_rails, scripted_yaml

WORDS = " ".join(f"w{i}" for i in range(200))  # 200 scripted tokens


def blocked_json(rail: str) -> str:
    return json.dumps(
        {
            "error": {
                "message": f"Blocked by {rail} rails.",
                "type": "guardrails_violation",
                "param": rail,
                "code": "content_blocked",
            }
        }
    )


def scripted(rails: LLMRails) -> ScriptedProvider:
    provider = rails.provider("main")
    assert isinstance(provider, ScriptedProvider)
    return provider


def no_secret(bot_message: str) -> bool:
    return "SECRET" not in bot_message


# The demo, as the README shows it


async def test_demo_streams_blocks_and_reports_usage_in_the_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = LLMRails(RailsConfig.from_path(DEMO))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
        assert "".join(chunks).startswith("Hello! I am a scripted model")
        assert len(chunks) > 1  # streamed window by window, not in one piece
        call = stream.log.llm_calls[0]
        assert (call.task, call.llm_provider_name, call.status) == (
            "general",
            "scripted",
            "completed",
        )
        assert call.prompt_tokens == 2  # "hello there"
        assert call.completion_tokens == call.streamed_tokens == 21
        assert call.total_tokens == 23
        assert call.time_to_first_token is not None
        assert call.time_to_first_token >= 0

        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
        assert chunks[-1] == blocked_json("check no secrets")
        assert "sk-" not in "".join(chunks[:-1])
        assert stream.log.llm_calls[0].status == "cancelled"
        assert stream.log.activated_rails[-1].stop is True


# Cancellation reaches the model at once


async def test_consumer_break_cancels_generation_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails([WORDS], delay_ms=10)
    with trio.fail_after(HANG_GUARD_S):
        async for _chunk in rails.stream_async(messages=USER):
            break
        produced = scripted(rails).tokens_streamed
        await trio.sleep(60)  # virtual: ample time for a leaked generation to go on
    assert scripted(rails).tokens_streamed == produced
    assert produced < 10


async def test_aclose_cancels_generation_records_it_and_is_idempotent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails([WORDS], delay_ms=10)
    with trio.fail_after(HANG_GUARD_S):
        stream = rails.stream_async(messages=USER)
        assert await stream.__anext__() == "w0 "
        await stream.aclose()
        await stream.aclose()
        produced = scripted(rails).tokens_streamed
        await trio.sleep(60)
    assert scripted(rails).tokens_streamed == produced < 10
    assert stream.state is StreamState.CLOSED
    assert stream.log.llm_calls[0].status == "cancelled"
    with pytest.raises(StreamStateError, match=r"^this stream is closed$"):
        await stream.__anext__()


async def test_a_cancelled_consumer_cancels_its_generation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails([WORDS], delay_ms=10)
    stream = rails.stream_async(messages=USER)
    with trio.fail_after(HANG_GUARD_S):
        with trio.move_on_after(0.05):
            async for _chunk in stream:
                pass
        produced = scripted(rails).tokens_streamed
        await trio.sleep(60)
    assert scripted(rails).tokens_streamed == produced < 20
    assert stream.state is StreamState.CLOSED


async def test_a_block_cancels_generation_at_once(autojump_clock: trio.testing.MockClock) -> None:
    tokens = [f"w{i} " for i in range(100)]
    tokens[10] = "SECRET "
    rails = make_rails(
        [tokens],
        actions={"no_secret": no_secret},
        flows=["no secret"],
        delay_ms=10,
        chunk_size=4,
        context_size=1,
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
        produced = scripted(rails).tokens_streamed
        await trio.sleep(60)
    assert chunks[-1] == blocked_json("no secret")
    assert "SECRET" not in "".join(chunks)
    # The window holding token 10 ends at token 13 (windows of 4, context 1); with tokens
    # paced one by one, generation stops within the lookahead of the channels.
    assert 11 <= produced <= 13 + CHANNEL_CAPACITY["tokens"] + 2
    assert scripted(rails).tokens_streamed == produced
    assert stream.log.llm_calls[0].status == "cancelled"


async def test_a_consumer_that_stops_reading_pauses_generation_after_a_bounded_lookahead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails([WORDS], delay_ms=1)  # no rails: every token flows straight through
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            await stream.__anext__()
            await trio.sleep(60)  # the consumer stalls; virtual time runs on
            paused_at = scripted(rails).tokens_streamed
            await trio.sleep(60)
            assert scripted(rails).tokens_streamed == paused_at
            # Tokens are one per batch here; each channel holds its capacity, each stage one more.
            bound = (
                1
                + CHANNEL_CAPACITY["output"]
                + CHANNEL_CAPACITY["windows"]
                + CHANNEL_CAPACITY["tokens"]
                + 3
            )
            assert paused_at <= bound
            stats = stream.statistics()
            assert stats.output.current_buffer_used == CHANNEL_CAPACITY["output"]


async def test_with_stream_first_false_lookahead_is_bounded_by_the_window_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(
        [WORDS],
        actions={"no_secret": no_secret},
        flows=["no secret"],
        delay_ms=1,
        chunk_size=8,
        context_size=2,
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            await stream.__anext__()
            await trio.sleep(120)
            paused_at = scripted(rails).tokens_streamed
            await trio.sleep(60)
            assert scripted(rails).tokens_streamed == paused_at < 200
            assert (
                paused_at
                <= 8 * (CHANNEL_CAPACITY["output"] + CHANNEL_CAPACITY["windows"] + 4)
                + CHANNEL_CAPACITY["tokens"]
                + 2
            )


# Errors as chunks


async def test_a_rail_that_raises_fails_closed_with_an_internal_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def broken(bot_message: str) -> bool:
        raise RuntimeError("regex engine exploded")

    rails = make_rails(["one two three four five"], actions={"broken": broken}, flows=["broken"])
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert chunks == [
        json.dumps(
            {
                "error": {
                    "message": "Internal error in broken rail: RuntimeError: regex engine exploded",
                    "type": "internal_error",
                    "param": "broken",
                    "code": "rail_execution_failure",
                }
            }
        )
    ]


async def test_a_rail_returning_neither_bool_nor_result_fails_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(
        ["one two"], actions={"vague": lambda bot_message: "looks fine"}, flows=["vague"]
    )
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    error = json.loads(chunks[-1])["error"]
    assert error["code"] == "rail_execution_failure"
    assert "returned str, expected bool" in error["message"]


async def test_a_result_object_with_is_blocked_is_honoured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @attrs.frozen
    class Result:
        is_blocked: bool
        reason: str

    rails = make_rails(
        ["one two"], actions={"judge": lambda bot_message: Result(True, "nope")}, flows=["judge"]
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert chunks == [blocked_json("judge")]
    assert stream.log.activated_rails[0].additional_info["reason"] == "nope"


async def test_a_rail_past_its_timeout_fails_closed(autojump_clock: trio.testing.MockClock) -> None:
    async def slow(bot_message: str) -> bool:
        await trio.sleep(5)
        return True

    rails = make_rails(["one two"], actions={"slow": slow}, flows=["slow"], rail_timeout_s=1.5)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert (
        json.loads(chunks[-1])["error"]["message"]
        == "Internal error in slow rail: timed out after 1.5s"
    )


async def test_parallel_rails_first_block_cancels_the_others_and_is_named(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[str] = []

    async def slow_ok(bot_message: str) -> bool:
        await trio.sleep(10)
        finished.append("slow")
        return True

    async def quick_block(bot_message: str) -> bool:
        await trio.sleep(0.1)
        return False

    rails = make_rails(
        ["one two"],
        actions={"slow_ok": slow_ok, "quick_block": quick_block},
        flows=["slow ok", "quick block"],
        parallel=True,
    )
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        chunks = await collect(rails)
        elapsed = trio.current_time() - start
    assert chunks == [blocked_json("quick block")]
    assert finished == []
    assert elapsed < 10  # virtual time: the slow rail was cancelled, not awaited


async def test_sequential_rails_stop_at_the_first_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[str] = []

    def first(bot_message: str) -> bool:
        calls.append("first")
        return False

    def second(bot_message: str) -> bool:
        calls.append("second")
        return True

    rails = make_rails(
        ["one two"], actions={"first": first, "second": second}, flows=["first", "second"]
    )
    with trio.fail_after(HANG_GUARD_S):
        assert await collect(rails) == [blocked_json("first")]
    assert calls == ["first"]


async def test_provider_errors_become_their_payloads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def failing() -> AsyncIterator[str]:
        yield "partial "
        raise DownstreamError(429, "rate limited")

    async def broken() -> AsyncIterator[str]:
        yield "partial "
        raise GenerationError("connection dropped")

    rails = make_rails(["unused"])
    with trio.fail_after(HANG_GUARD_S):
        assert await collect(rails, generator=failing()) == [
            "partial ",
            json.dumps(
                {
                    "error": {
                        "message": "rate limited",
                        "type": "downstream_error",
                        "param": None,
                        "code": 429,
                    }
                }
            ),
        ]
        assert await collect(rails, generator=broken()) == [
            "partial ",
            json.dumps(
                {
                    "error": {
                        "message": "connection dropped",
                        "type": "generation_error",
                        "param": None,
                        "code": "generation_failed",
                    }
                }
            ),
        ]


async def test_generator_output_goes_through_the_rails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def gen() -> AsyncIterator[str]:
        for piece in ["a ", "b ", "SECRET ", "c "]:
            yield piece

    rails = make_rails(
        ["unused"],
        actions={"no_secret": no_secret},
        flows=["no secret"],
        chunk_size=2,
        context_size=1,
    )
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails, generator=gen())
    assert chunks == ["a ", blocked_json("no secret")]


async def test_include_metadata_gives_dicts_and_a_last_dict_with_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(["one two three"])
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails, include_metadata=True)
    assert chunks[:-1] == [{"text": "one two three"}]
    assert chunks[-1] == {
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    }


async def test_include_metadata_after_a_block_still_reports_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(
        ["SECRET now"], actions={"no_secret": no_secret}, flows=["no secret"], report_usage=False
    )
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails, include_metadata=True)
    assert chunks[0]["error"]["code"] == "content_blocked"
    assert chunks[1] == {
        "finish_reason": "content_filter",
        "usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    }


async def test_usage_is_none_not_zero_when_the_provider_reports_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(["one two"], report_usage=False)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            _ = [c async for c in stream]
    call = stream.log.llm_calls[0]
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (None, None, None)
    assert call.streamed_tokens == 2
    assert stream.log.stats is not None
    assert stream.log.stats.llm_calls_total_tokens is None


async def test_the_log_is_not_ready_before_the_end(autojump_clock: trio.testing.MockClock) -> None:
    rails = make_rails(["one two"])
    stream = rails.stream_async(messages=USER)
    with pytest.raises(
        StreamStateError, match=r"^the log is ready once the stream has ended or been closed$"
    ):
        _ = stream.log
    await stream.aclose()
    assert stream.log.llm_calls == []  # closed before it started: nothing was called


async def test_sync_and_async_actions_get_the_arguments_they_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Any] = []

    async def spy(
        bot_message: str, user_message: str, context: dict[str, Any], config: Any
    ) -> bool:
        seen.append((bot_message, user_message, context["window_index"], config is rails.config))
        return True

    rails = make_rails(["a b c"], actions={"spy": spy}, flows=["spy"], chunk_size=2, context_size=1)
    with trio.fail_after(HANG_GUARD_S):
        assert "".join(await collect(rails)) == "a b c"
    assert seen == [("a b ", "hello there", 0, True), ("b c", "hello there", 1, True)]


# Bad requests fail at call time


def test_output_rails_without_streaming_enabled_raise_at_call_time() -> None:
    yaml = scripted_yaml(["x"], flows=["no secret"]).replace('"enabled": true', '"enabled": false')
    rails = LLMRails(RailsConfig.from_content(yaml_content=yaml))
    rails.register_action(no_secret)
    with pytest.raises(
        StreamingNotSupportedError, match=r"rails\.output\.streaming\.enabled is not true"
    ):
        rails.stream_async(messages=USER)


def test_a_flow_without_rail_or_action_is_named_at_call_time() -> None:
    rails = make_rails(["x"], flows=["check tone"])
    with pytest.raises(
        RailNotFoundError,
        match=r"^output flow 'check tone' has no rail: .* no action named 'check_tone'",
    ):
        rails.stream_async(messages=USER)


def test_check_finds_a_flow_without_rail_and_a_missing_main_model_up_front() -> None:
    yaml = scripted_yaml(["x"], flows=["check tone"])
    rails = make_rails(["x"], flows=["check tone"])
    with pytest.raises(ConfigError) as found:
        rails.check()
    (problem,) = found.value.problems
    assert (problem.path, problem.problem.split(":")[0]) == (
        "rails.output.flows[0]",
        "output flow 'check tone' has no rail",
    )
    rails.register_action(no_secret, name="check_tone")
    rails.check()  # an action registered afterwards counts, as it does at call time
    modelless = LLMRails(RailsConfig.from_content(yaml_content=yaml.replace('"main"', '"other"')))
    modelless.register_action(no_secret, name="check_tone")
    modelless.check(main_model=False)  # a caller that always passes generator=
    with pytest.raises(ConfigError, match=r"^<yaml_content>: models: no model of type main"):
        modelless.check()


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        pytest.param("hi", r"^messages: expected a list of messages, got str$", id="string"),
        pytest.param([], r"^messages: the list is empty", id="empty"),
        pytest.param(
            [{"role": "bot", "content": "x"}], r"^messages\[0\]\.role: expected one of", id="role"
        ),
        pytest.param(
            [{"role": "user", "content": 3}],
            r"^messages\[0\]\.content: expected a string or a list of content parts, got int$",
            id="content",
        ),
        pytest.param(["hi"], r"^messages\[0\]: expected a dict", id="not-a-dict"),
    ],
)
def test_bad_messages_are_refused_with_where_and_what(messages: Any, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        make_rails(["x"]).stream_async(messages=messages)


def test_bad_options_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"^options\.log\.llm_callz: unknown key$"):
        make_rails(["x"]).stream_async(messages=USER, options={"log": {"llm_callz": True}})


def test_action_with_a_parameter_railstream_cannot_give_is_refused_at_registration() -> None:
    def needs(bot_message: str, database: Any) -> bool:
        return True

    with pytest.raises(TypeError, match=r"^action 'needs' requires parameter 'database'"):
        make_rails(["x"]).register_action(needs)


async def test_prompt_is_taken_as_the_user_message(autojump_clock: trio.testing.MockClock) -> None:
    rails = make_rails(["fine"])
    with trio.fail_after(HANG_GUARD_S):
        assert await collect(rails, messages=None, prompt="one two three") == ["fine"]


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_checks_overlap_up_to_max_concurrent_checks_and_no_further(
    autojump_clock: trio.testing.MockClock, limit: int
) -> None:
    active, peak = 0, 0

    async def slow(bot_message: str) -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await trio.sleep(1)
        active -= 1
        return True

    # 8 windows of 4 new tokens, all generated at once; each check takes 1 s.
    rails = make_rails(
        [" ".join(f"t{i}" for i in range(32))],
        actions={"slow": slow},
        flows=["slow"],
        chunk_size=4,
        context_size=0,
        max_concurrent_checks=limit,
    )
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        chunks = await collect(rails)
        elapsed = trio.current_time() - start
    assert "".join(chunks) == " ".join(f"t{i}" for i in range(32))
    assert peak == limit
    assert elapsed == pytest.approx(8 / limit)
