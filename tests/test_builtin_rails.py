"""Built-in rails: the blocklist and the content safety judge; per-rail timeouts."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from config_schema import BlocklistConfig
from engine import LLMRails, RailsConfig
from stages.rails import BlocklistCheckOutput, parse_safety_answer

from .helpers import HANG_GUARD_S, USER, collect, make_rails, scripted_yaml
from .strategies import geometry


@pytest.mark.parametrize(
    ("config", "text", "found"),
    [
        pytest.param({"words": ["secret"]}, "the secret is out", "secret", id="word"),
        pytest.param({"words": ["secret"]}, "the SeCrEt is out", "secret", id="case-folded"),
        pytest.param(
            {"words": ["secret"]}, "secretary, secrets, topsecret", None, id="whole-words-only"
        ),
        pytest.param({"words": ["secret"]}, "(secret)", "secret", id="punctuation-bounds"),
        pytest.param({"words": ["straße"]}, "STRASSE ahead", "strasse", id="full-case-folding"),
        pytest.param(
            {"words": ["launch code"]}, "the Launch  Code", None, id="phrase-needs-its-spacing"
        ),
        pytest.param(
            {"words": ["launch code"]}, "the Launch Code is 7", "launch code", id="phrase"
        ),
        pytest.param(
            {"words": ["Secret"], "case_sensitive": True},
            "a secret",
            None,
            id="case-sensitive-miss",
        ),
        pytest.param(
            {"words": ["Secret"], "case_sensitive": True},
            "a Secret",
            "Secret",
            id="case-sensitive-hit",
        ),
        pytest.param(
            {"patterns": [r"sk-[a-z0-9]{8,}"]},
            "key SK-abcdef123 here",
            "SK-abcdef123",
            id="pattern-ignorecase",
        ),
        pytest.param(
            {"patterns": [r"\b\d{3}-\d{2}-\d{4}\b"]}, "ssn 123-45-6789", "123-45-6789", id="pattern"
        ),
    ],
)
def test_blocklist_matching(config: dict[str, Any], text: str, found: str | None) -> None:
    rail = BlocklistCheckOutput(
        BlocklistConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    )
    assert rail.find(text) == found


def blocklist_rails(tokens: list[str], chunk: int, context: int) -> LLMRails:
    extra = "\n".join(["rails:", "  output:", "    blocklist: {words: [forbidden]}"])
    yaml = scripted_yaml(
        [tokens], flows=["blocklist check output"], chunk_size=chunk, context_size=context
    )
    doc = json.loads(yaml)
    doc["rails"]["output"]["blocklist"] = {"words": ["forbidden"]}
    del extra
    return LLMRails(RailsConfig.from_content(yaml_content=json.dumps(doc)))


@given(st.data(), geometry(max_chunk=8), st.integers(0, 30), st.integers(0, 30))
def test_a_blocked_word_split_across_at_most_c_plus_1_tokens_is_caught_and_never_leaks(
    data: st.DataObject, geo: tuple[int, int], before: int, after: int
) -> None:
    """With stream_first false, a blocked word cut into at most C+1 tokens, anywhere in the
    reply, is caught whole by some window, and not one of its pieces is released."""
    chunk, context = geo
    pieces = data.draw(st.integers(1, min(context + 1, len("forbidden"))))
    cuts = sorted(
        data.draw(
            st.lists(
                st.integers(1, len("forbidden") - 1),
                min_size=pieces - 1,
                max_size=pieces - 1,
                unique=True,
            )
        )
    )
    word = [
        " forbidden"[a:b]
        for a, b in zip(
            [0, *[c + 1 for c in cuts]], [*[c + 1 for c in cuts], len(" forbidden")], strict=True
        )
    ]
    word[-1] += " "
    tokens = [f"w{i} " for i in range(before)] + word + [f"v{i} " for i in range(after)]
    rails = blocklist_rails(tokens, chunk, context)

    async def run() -> list[str]:
        with trio.fail_after(HANG_GUARD_S):
            return await collect(rails)

    chunks = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    released = "".join(chunks[:-1])
    assert json.loads(chunks[-1])["error"]["param"] == "blocklist check output"
    assert released == "".join(tokens[: len(released.split(" ")) - 1]) or "forb" not in released
    assert not any(piece.strip() and piece.strip() in released.split() for piece in word)
    assert "".join(tokens).startswith(released)
    assert len(released) <= len("".join(tokens[:before]))


# content safety


@pytest.mark.parametrize(
    ("answer", "allowed", "categories"),
    [
        ("safe", True, []),
        ("Safe\n", True, []),
        ("unsafe\nS1,S10", False, ["S1", "S10"]),
        ("unsafe", False, []),
        ("I cannot judge this", False, []),
        ("", False, []),
    ],
)
def test_safety_answers(answer: str, allowed: bool, categories: list[str]) -> None:
    assert parse_safety_answer(answer) == (allowed, categories)


SAFETY = """
models:
  - {type: main, engine: scripted, parameters: {responses: ["one two three"]}}
  - {type: content_safety, engine: scripted, model: llama-guard, parameters: {responses: [%s]}}
rails:
  output:
    flows: [content safety check output]
    streaming: {enabled: true, chunk_size: 10, context_size: 2, stream_first: false}
prompts:
  - task: content_safety_check_output
    content: "Task: check the Agent message. User: {{ user_input }} Agent: {{ bot_response }}"
"""


async def test_content_safety_allows_safe_output(autojump_clock: trio.testing.MockClock) -> None:
    rails = LLMRails(RailsConfig.from_content(yaml_content=SAFETY % '"safe"'))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            assert "".join([c async for c in stream]) == "one two three"
    judge = [c for c in stream.log.llm_calls if c.task == "content_safety_check_output"]
    assert [(c.llm_model_name, c.completion) for c in judge] == [("llama-guard", "safe")]
    assert (
        judge[0].prompt == "Task: check the Agent message. User: hello there Agent: one two three"
    )


async def test_content_safety_blocks_and_keeps_the_categories_in_the_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = LLMRails(RailsConfig.from_content(yaml_content=SAFETY % '"unsafe\\nS1,S10"'))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert (
        json.loads(chunks[-1])["error"]["message"]
        == "Blocked by content safety check output rails."
    )
    (run,) = stream.log.activated_rails
    assert run.stop is True
    assert run.additional_info["reason"] == "unsafe: S1, S10"
    assert run.executed_actions[0].return_value == {
        "allowed": False,
        "policy_violations": ["S1", "S10"],
    }
    assert [c.task for c in run.executed_actions[0].llm_calls] == ["content_safety_check_output"]


# per-rail timeouts and the log


async def test_a_per_rail_timeout_overrides_the_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow(bot_message: str) -> bool:
        await trio.sleep(5)
        return True

    async def also_slow(bot_message: str) -> bool:
        await trio.sleep(5)
        return True

    yaml = json.loads(scripted_yaml(["one two"], flows=["slow", "also slow"], rail_timeout_s=100))
    yaml["rails"]["output"]["streaming"]["rail_timeouts_s"] = {"also slow": 2.5}
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(yaml)))
    rails.register_action(slow)
    rails.register_action(also_slow)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert (
        json.loads(chunks[-1])["error"]["message"]
        == "Internal error in also slow rail: timed out after 2.5s"
    )


async def test_the_log_lists_every_rail_run_with_window_verdict_and_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def check(bot_message: str) -> bool:
        await trio.sleep(0.25)
        return "three" not in bot_message

    rails = make_rails(
        ["one two three four"],
        actions={"check": check},
        flows=["check"],
        chunk_size=2,
        context_size=0,
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            _ = [c async for c in stream]
    runs = [
        (r.name, r.additional_info["window_index"], r.additional_info["verdict"], r.stop)
        for r in stream.log.activated_rails
    ]
    assert runs[:2] == [("check", 0, "pass", False), ("check", 1, "block", True)]
    assert all(r.duration == pytest.approx(0.25) for r in stream.log.activated_rails[:2])
