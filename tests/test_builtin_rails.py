"""Built-in rails: the blocklist and the content safety judge; per-rail timeouts."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from railstream import LLMRails, RailsConfig
from railstream.config_schema import BlocklistConfig, ConfigError
from railstream.stages._buffering import WindowBuffer
from railstream.stages.rails import (
    BlocklistCheckOutput,
    normalise_blocklist_text,
    parse_safety_answer,
)

from .helpers import HANG_GUARD_S, USER, collect, make_rails, scripted_yaml
from .strategies import disguised, geometry, split_into_tokens

API_KEY = r"\bsk-[A-Za-z0-9]{20,}"  # the README's example


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
        # Any run of whitespace reads as one space, in the text and in the listed words.
        pytest.param(
            {"words": ["launch code"]}, "the Launch  Code", "launch code", id="doubled-space"
        ),
        pytest.param(
            {"words": ["launch code"]}, "launch\n\ncode", "launch code", id="newlines-in-phrase"
        ),
        pytest.param(
            {"words": ["launch code"]},
            "launch\u00a0\tcode\u3000",
            "launch code",
            id="unusual-whitespace",
        ),
        pytest.param(
            {"words": [" launch   code "]}, "launch code", "launch code", id="spaced-word"
        ),
        pytest.param({"words": ["launch code"]}, "launchcode", None, id="phrase-needs-a-space"),
        # NFKC: full-width letters and ligatures are the letters they look like.
        pytest.param(
            {"words": ["secret"]},
            "the \uff33\uff25\uff23\uff32\uff25\uff34",
            "secret",
            id="full-width",
        ),
        pytest.param({"words": ["\uff53ecret"]}, "a secret", "secret", id="full-width-word"),
        pytest.param({"words": ["offer"]}, "an o\ufb00er", "offer", id="ligature"),
        # Invisible characters: a reader sees the word, so the rail does.
        pytest.param({"words": ["secret"]}, "se\u200b\u200bcret", "secret", id="zero-width-space"),
        pytest.param({"words": ["secret"]}, "se\u200ccret", "secret", id="zero-width-non-joiner"),
        pytest.param({"words": ["secret"]}, "se\u200dcret", "secret", id="zero-width-joiner"),
        pytest.param({"words": ["secret"]}, "se\u2060cret", "secret", id="word-joiner"),
        pytest.param({"words": ["secret"]}, "\ufeffsecret\ufeff", "secret", id="bom"),
        pytest.param({"words": ["secret"]}, "se\u00adcret", "secret", id="soft-hyphen"),
        pytest.param({"words": ["secret"]}, "se\U000e0041cret", "secret", id="tag-character"),
        pytest.param({"words": ["se\u200bcret"]}, "a secret", "secret", id="zero-width-in-word"),
        pytest.param(
            {"words": ["launch code"]}, "launch \u200b code", "launch code", id="zw-in-gap"
        ),
        # Joined by an invisible character, "topsecret" reads as one word.
        pytest.param({"words": ["secret"]}, "top\u200bsecret", None, id="invisible-joins-words"),
        # A boundary only where the word's edge is a word character.
        pytest.param({"words": ["sk-"]}, "key: sk-abc123", "sk-", id="non-word-right-edge"),
        pytest.param({"words": ["sk-"]}, "task-list", None, id="word-left-edge-still-whole"),
        pytest.param({"words": ["@admin"]}, "mail root@admin", "@admin", id="non-word-left-edge"),
        pytest.param({"words": ["c++"]}, "in c++11", "c++", id="non-word-edge-before-digits"),
        pytest.param(
            {"words": ["Secret"], "case_sensitive": True},
            "a \uff33ecret",
            "Secret",
            id="case-sensitive-still-normalised",
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
        pytest.param(
            {"patterns": [API_KEY]}, f"key sk-{'A1' * 12}.", f"sk-{'A1' * 12}", id="api-key"
        ),
        pytest.param({"patterns": [API_KEY]}, f"task-{'A1' * 12}", None, id="api-key-whole"),
        # Patterns also see the normalised text (its case as written: IGNORECASE folds it)...
        pytest.param(
            {"patterns": [API_KEY]},
            f"key sk-{'A1' * 6}\u200b{'A1' * 6}",
            f"sk-{'A1' * 12}",
            id="api-key-zero-width",
        ),
        pytest.param(
            {"patterns": [API_KEY]},
            f"key \uff53\uff4b-{'A1' * 12}",
            f"sk-{'A1' * 12}",
            id="api-key-full-width",
        ),
        pytest.param(
            {"patterns": ["launch code"]}, "Launch\n code", "Launch code", id="pattern-whitespace"
        ),
        # ... and the text as written, for patterns about lines or invisible characters.
        pytest.param(
            {"patterns": [r"(?m:^password:)"]}, "hi\npassword: x", "password:", id="pattern-lines"
        ),
        pytest.param(
            {"patterns": ["[\u200b-\u200d]"]}, "a\u200db", "\u200d", id="pattern-invisible"
        ),
    ],
)
def test_blocklist_matching(config: dict[str, Any], text: str, found: str | None) -> None:
    rail = BlocklistCheckOutput(
        BlocklistConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    )
    assert rail.find(text) == found


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("a b", "a b", id="plain"),
        pytest.param("a\n", "a ", id="trailing-run"),
        pytest.param("\t\u3000a  b", " a b", id="leading-run"),
        pytest.param(" \n\u200b\n ", " ", id="only-whitespace"),
        pytest.param("\u200b", "", id="only-invisible"),
        pytest.param("\uff33\u00adk\u2060-\u200d1", "sk-1", id="full-width-and-invisible"),
        pytest.param("e\u034f\u0301", "\u00e9", id="invisible-removed-before-composing"),
    ],
)
def test_normalised_text_has_one_space_for_each_whitespace_run(text: str, normal: str) -> None:
    """Runs at the ends become one space too, not nothing: a pattern may anchor on them."""
    assert normalise_blocklist_text(text, fold=True) == normal


def test_a_word_that_normalises_to_nothing_warns_and_is_ignored() -> None:
    # Compiled, the empty word would match everywhere and block every window.
    with pytest.warns(
        UserWarning,
        match=r"^the blocked word '\\u200b\\u2060' is empty once invisible characters and "
        r"whitespace are removed, so it can never match; it is ignored$",
    ):
        rail = BlocklistCheckOutput(BlocklistConfig(words=("\u200b\u2060", "secret")))
    assert rail.find("nothing to see") is None
    assert rail.find("a secret") == "secret"


def test_loading_rails_with_an_invisible_word_warns_once() -> None:
    doc = json.loads(scripted_yaml(["hi"], flows=["blocklist check output"]))
    doc["rails"]["output"]["blocklist"] = {"words": ["\u00ad", "secret"]}
    config = RailsConfig.from_content(yaml_content=json.dumps(doc))
    with pytest.warns(UserWarning, match=r"^the blocked word '\\xad' is empty once ") as seen:
        LLMRails(config)
    assert len(seen) == 1


def test_a_blank_word_is_still_a_config_error() -> None:
    doc = json.loads(scripted_yaml(["hi"], flows=["blocklist check output"]))
    doc["rails"]["output"]["blocklist"] = {"words": [" \n "]}
    with pytest.raises(
        ConfigError,
        match=r"^<yaml_content>:1: rails\.output\.blocklist\.words\[0\]: "
        r"a blocked word must not be empty$",
    ):
        RailsConfig.from_content(yaml_content=json.dumps(doc))


async def test_the_log_names_what_a_disguised_word_matched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tokens = ["the ", "Launch\u200b ", " \n", "\uff23ode ", "is ", "7"]
    doc = json.loads(scripted_yaml([tokens], flows=["blocklist check output"], chunk_size=8))
    doc["rails"]["output"]["blocklist"] = {"words": ["launch code"]}
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(doc)))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert json.loads(chunks[-1])["error"]["param"] == "blocklist check output"
    (run,) = stream.log.activated_rails
    assert run.additional_info["reason"] == "matched 'launch code'"
    assert run.executed_actions[0].return_value == {"matched": "launch code"}


BLOCKED = ("forbidden", "launch code", "sk-")


@given(st.data(), geometry(max_chunk=8), st.integers(0, 8), st.integers(0, 8))
def test_a_disguised_blocked_word_cut_into_tokens_anyhow_is_caught_by_exactly_the_windows_holding_it(
    data: st.DataObject, geo: tuple[int, int], before: int, after: int
) -> None:
    """A blocked word, disguised (case, full-width letters, invisible characters anywhere, any
    whitespace run for its space) and cut into tokens in any way, is caught by every window
    that holds all of its visible characters, and by no other; when those lie within C+1
    tokens, some window holds them all (SPEC, "Token windows")."""
    chunk, context = geo
    word = data.draw(st.sampled_from(BLOCKED))
    # What follows a word character must not be one, or with only invisible characters
    # between, "forbidden" and the next token would read as one longer word; after a
    # non-word edge ("sk-") comes a key, which must not hide it.
    follow = [" ", "  ", "\n", ", "] if word[-1].isalnum() else ["abc123 ", "Q\u200b9 "]
    shown = data.draw(disguised(word))
    pieces = data.draw(split_into_tokens(shown + data.draw(st.sampled_from(follow)), context + 2))
    tokens = [f"w{i} " for i in range(before)] + pieces + [f"v{i} " for i in range(after)]
    # The tokens holding a character of the word that a reader sees: a window must hold all.
    ends = list(itertools.accumulate(len(p) for p in pieces))
    visible = [
        before + i
        for i, end in enumerate(ends)
        if normalise_blocklist_text(shown[end - len(pieces[i]) : end], fold=True).strip()
    ]
    first, last = visible[0], visible[-1]
    rail = BlocklistCheckOutput(BlocklistConfig(words=BLOCKED))
    buffer = WindowBuffer(chunk, context)
    windows = buffer.push(tokens)
    windows += [w for w in [buffer.finish()] if w is not None]

    holding = [w.start <= first and last < w.end for w in windows]
    caught = [rail.find(w.text) is not None for w in windows]
    assert caught == holding
    if last - first + 1 <= context + 1:
        assert any(holding)


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
