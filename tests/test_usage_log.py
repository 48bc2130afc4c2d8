"""Every LLM call is in the log, cut-off ones too, and the log's memory is bounded."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from railstream import LLMRails, RailsConfig
from railstream.stages._messages import LLMCall, Usage
from railstream.stages._usage import MAX_LOG_TEXT_CHARS, MAX_TEXT_CHARS, UsageLedger
from railstream.stages.generation import Completion, ProviderOutcome

from .helpers import HANG_GUARD_S, USER


class WriterAndHungJudge:
    """Streams a reply; as a judge (a whole-reply call), never answers."""

    provider_name = "test"
    model_name = "writer"

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens

    async def stream(self, request: Any, emit: Any) -> ProviderOutcome:
        for token in self.tokens:
            await emit((token,))
        return ProviderOutcome(usage=Usage(prompt_tokens=2, completion_tokens=len(self.tokens)))

    async def complete(self, request: Any) -> Completion:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


def judged_rails(flows: list[str], *, parallel: bool = False, **streaming: Any) -> LLMRails:
    doc = {
        "models": [
            {"type": "main", "engine": "scripted", "model": "m", "parameters": {"responses": ["x"]}}
        ],
        "rails": {
            "output": {
                "flows": flows,
                "parallel": parallel,
                "streaming": {"enabled": True, "chunk_size": 4, "context_size": 1, **streaming},
            }
        },
        "prompts": [{"task": "self_check_output", "content": "Block this? {{ bot_response }}"}],
    }
    rails = LLMRails(
        RailsConfig.from_content(yaml_content=json.dumps(doc)),
        llm=WriterAndHungJudge(["a ", "b ", "c "]),
    )
    rails.register_action(lambda bot_message: False, "always_block")
    return rails


def judge_calls(stream: Any) -> list[Any]:
    return [c for c in stream.log.llm_calls if c.task == "self_check_output"]


async def test_a_judge_call_cut_off_by_its_rail_timeout_is_logged_as_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = judged_rails(["self check output"], rail_timeout_s=3)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert json.loads(chunks[-1])["error"]["code"] == "rail_execution_failure"
    (call,) = judge_calls(stream)
    assert call.status == "cancelled"
    assert call.prompt == "Block this? a b c "  # what is known of it is kept
    # Nobody reported its tokens: unknown, never a made-up 0.
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (None, None, None)
    assert 3 <= call.duration < 3.1


async def test_a_judge_call_cut_off_by_a_parallel_rails_first_block_is_logged_as_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = judged_rails(["self check output", "always block"], parallel=True)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert json.loads(chunks[-1])["error"]["param"] == "always block"
    (call,) = judge_calls(stream)
    assert call.status == "cancelled"
    assert stream.log.stats.llm_calls_total_tokens is None  # one call's count is unknown


def test_the_ledger_keeps_a_bounded_amount_of_prompt_and_completion_text() -> None:
    """2,000 judge calls of 10,000-character prompts (a long reply's windows): every call is
    kept with its counts, but the text kept stays within the ledger's bound."""
    ledger = UsageLedger()
    for i in range(2_000):
        ledger.add(
            LLMCall(
                task="self_check_output",
                model="judge",
                provider="test",
                usage=Usage(prompt_tokens=2_500, completion_tokens=1, total_tokens=2_501),
                streamed_tokens=0,
                status="completed",
                started_at=0.0,
                finished_at=1.0,
                duration=1.0,
                window_index=i,
                prompt="p" * 10_000,
                completion="No",
            )
        )
    assert len(ledger.llm_calls) == 2_000
    assert all(c.usage.total_tokens == 2_501 for c in ledger.llm_calls)
    kept = sum(len(c.prompt or "") + len(c.completion or "") for c in ledger.llm_calls)
    marker = len("... [10000 more characters not kept]")
    assert kept <= MAX_LOG_TEXT_CHARS + 2_000 * marker
    first = ledger.llm_calls[0].prompt
    assert first is not None
    assert first.startswith("p" * MAX_TEXT_CHARS)
    assert first.endswith(f"... [{10_000 - MAX_TEXT_CHARS} more characters not kept]")
    assert ledger.llm_calls[-1].prompt is None
    assert ledger.texts_cut >= 1_990
