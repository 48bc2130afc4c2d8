"""generate_async / generate, the deprecated StreamingHandler, and the self check output rail."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from railstream import GenerationResponse, LLMRails, RailsConfig, StreamingHandler
from railstream.facade._llmrails import BLOCKED_REPLY, INTERNAL_ERROR_REPLY
from railstream.stages._errors import DownstreamError
from railstream.stages.rails import parse_judge_answer

from .helpers import HANG_GUARD_S, USER, BatchProvider, collect, make_rails


def no_secret(bot_message: str) -> bool:
    return "SECRET" not in bot_message


async def test_generate_async_returns_the_assistant_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(["all is well"], actions={"no_secret": no_secret}, flows=["no secret"])
    with trio.fail_after(HANG_GUARD_S):
        assert await rails.generate_async(messages=USER) == {
            "role": "assistant",
            "content": "all is well",
        }


async def test_generate_async_checks_the_whole_reply_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    def spy(bot_message: str) -> bool:
        seen.append(bot_message)
        return True

    rails = make_rails(
        ["one two three four five six"],
        actions={"spy": spy},
        flows=["spy"],
        chunk_size=2,
        context_size=1,
    )
    with trio.fail_after(HANG_GUARD_S):
        await rails.generate_async(messages=USER)
    assert seen == ["one two three four five six"]


async def test_generate_async_answers_a_block_with_the_refusal_and_logs_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(
        ["here is SECRET stuff"], actions={"no_secret": no_secret}, flows=["no secret"]
    )
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(
            messages=USER, options={"log": {"llm_calls": True, "activated_rails": True}}
        )
    assert isinstance(result, GenerationResponse)
    assert result.response == [{"role": "assistant", "content": BLOCKED_REPLY}]
    assert result.log is not None
    (rail,) = result.log.activated_rails
    assert (rail.type, rail.name, rail.stop, rail.decisions) == (
        "output",
        "no secret",
        True,
        ["execute no_secret", "refuse to respond", "stop"],
    )
    (call,) = result.log.llm_calls
    assert (call.task, call.prompt_tokens, call.completion_tokens, call.total_tokens) == (
        "general",
        2,
        4,
        6,
    )


async def test_generate_async_log_holds_only_what_was_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = make_rails(["fine"], actions={"no_secret": no_secret}, flows=["no secret"])
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(messages=USER, options={"log": {"llm_calls": True}})
    assert isinstance(result, GenerationResponse)
    assert result.log is not None
    assert len(result.log.llm_calls) == 1
    assert result.log.activated_rails == []


async def test_generate_async_fails_closed_on_a_broken_rail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def broken(bot_message: str) -> bool:
        raise ValueError("boom")

    rails = make_rails(["fine"], actions={"broken": broken}, flows=["broken"])
    with trio.fail_after(HANG_GUARD_S):
        assert await rails.generate_async(messages=USER) == {
            "role": "assistant",
            "content": INTERNAL_ERROR_REPLY,
        }


def test_sync_generate_runs_without_a_loop_with_the_nemo_log_shape() -> None:
    # trio.run on the real clock: the reply is unpaced, so nothing sleeps in real time.
    rails = make_rails(
        ["a reply in six scripted tokens"], actions={"no_secret": no_secret}, flows=["no secret"]
    )
    response = rails.generate(messages=USER, options={"log": {"llm_calls": True}})
    assert isinstance(response, GenerationResponse)
    assert response.log is not None
    (llm_call,) = response.log.llm_calls  # exactly the main call: an empty log must fail
    assert (llm_call.task, llm_call.prompt_tokens, llm_call.completion_tokens) == ("general", 2, 6)
    assert llm_call.total_tokens == 8


async def test_sync_generate_inside_a_loop_says_what_to_use_instead() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"^generate\(\) cannot run inside a running trio event loop; use `await rails\.generate_async",
    ):
        make_rails(["x"]).generate(messages=USER)


async def test_streaming_handler_gets_guarded_chunks_and_the_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tokens = ["a ", "b ", "c ", "SECRET ", "d "]
    rails = make_rails(
        [tokens],
        actions={"no_secret": no_secret},
        flows=["no secret"],
        chunk_size=2,
        context_size=1,
    )
    with pytest.warns(
        DeprecationWarning,
        match=r"StreamingHandler is deprecated; use LLMRails\.stream_async\(\) instead",
    ):
        handler = StreamingHandler()
    received: list[str] = []

    async def consume() -> None:
        async for chunk in handler:
            received.append(chunk)

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            result = await rails.generate_async(messages=USER, streaming_handler=handler)
    streamed = await collect(rails)  # the same config through stream_async
    assert received == streamed
    assert received[:-1] == ["a ", "b "]
    assert json.loads(received[-1])["error"]["code"] == "content_blocked"
    assert result == {"role": "assistant", "content": BLOCKED_REPLY}


async def test_generate_async_raises_provider_errors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Unauthorized(BatchProvider):
        async def complete(self, request: object) -> object:  # generate() asks for no streaming
            raise DownstreamError(401, "invalid api key")

    rails = LLMRails(RailsConfig.from_content(yaml_content=""), llm=Unauthorized([]))
    with (
        trio.fail_after(HANG_GUARD_S),
        pytest.raises(DownstreamError, match=r"^invalid api key$") as exc,
    ):
        await rails.generate_async(messages=USER)
    assert exc.value.status == 401


# self check output: the built-in LLM judge

SELF_CHECK = """
models:
  - {type: main, engine: scripted, model: writer, parameters: {responses: ["one two three four five six"]}}
  - {type: self_check_output, engine: scripted, model: judge, parameters: {responses: [%s]}}
rails:
  output:
    flows: [self check output]
    streaming: {enabled: true, chunk_size: 4, context_size: 1, stream_first: false}
prompts:
  - task: self_check_output
    content: "User said: {{ user_input }}. Bot said: {{ bot_response }}. Block it (Yes or No)? Answer:"
"""


async def test_self_check_output_judge_allows_and_is_recorded_per_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = LLMRails(RailsConfig.from_content(yaml_content=SELF_CHECK % '"No"'))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert "".join(chunks) == "one two three four five six"
    judge_calls = [c for c in stream.log.llm_calls if c.task == "self_check_output"]
    assert len(judge_calls) == 2  # windows: 4 tokens, then 1 context + 2 new
    assert (
        judge_calls[0].prompt
        == "User said: hello there. Bot said: one two three four . Block it (Yes or No)? Answer:"
    )
    assert judge_calls[0].completion == "No"
    assert (judge_calls[0].llm_model_name, judge_calls[0].prompt_tokens) == ("judge", 17)
    assert [len(r.executed_actions[0].llm_calls) for r in stream.log.activated_rails] == [1, 1]


async def test_self_check_output_judge_blocks(autojump_clock: trio.testing.MockClock) -> None:
    rails = LLMRails(RailsConfig.from_content(yaml_content=SELF_CHECK % '"Yes, it is harmful"'))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert chunks == [
        json.dumps(
            {
                "error": {
                    "message": "Blocked by self check output rails.",
                    "type": "guardrails_violation",
                    "param": "self check output",
                    "code": "content_blocked",
                }
            }
        )
    ]


@pytest.mark.parametrize(
    ("answer", "allowed"),
    [
        ("No", True),
        ("no.", True),
        ("Safe", True),
        (" No, it is fine", True),
        ("Yes", False),
        ("unsafe\nS1", False),
        ("YES!", False),
        ("I think yes", False),  # neither of the first two words decides: block
        ("The answer is No", False),
        ("", False),
    ],
)
def test_judge_answers_are_parsed_from_the_first_two_words(answer: str, allowed: bool) -> None:
    assert parse_judge_answer(answer) is allowed
