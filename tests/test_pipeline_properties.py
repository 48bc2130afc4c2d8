"""The SPEC's token-window semantics, end to end through the pipeline, as properties.

Each example runs a whole pipeline under trio's autojump clock (virtual time, deterministic
scheduling under hypothesis) with a rail whose latency varies per window.
"""

from __future__ import annotations

import re
from typing import Any

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from railstream.runtime._pipeline import Pipeline, PipelinePlan
from railstream.stages._buffering import WindowBuffer
from railstream.stages._messages import Released, StreamEnded, StreamFailed
from railstream.stages.generation import ChatRequest
from railstream.stages.rails import Action, ActionRail

from .helpers import HANG_GUARD_S, BatchProvider
from .strategies import batches, distinct_tokens, geometry

_TOKEN = re.compile(r"t\d+ ")


def run_pipeline(
    split: list[list[str]],
    *,
    chunk: int,
    context: int,
    stream_first: bool,
    secret: str | None = None,
    latencies: list[float] = [0.0],  # noqa: B006 (read only)
    max_checks: int = 1,
) -> tuple[list[Any], BatchProvider]:
    """Events in the order they happened: ("pass"|"block", window) from the rail, and the
    pipeline's output events as the consumer received them."""
    provider = BatchProvider(split)
    events: list[Any] = []

    async def check(bot_message: str, context: dict[str, Any]) -> bool:
        index = context["window_index"]
        await trio.sleep(latencies[index % len(latencies)])
        allowed = secret is None or secret not in bot_message
        events.append(("pass" if allowed else "block", index))
        return allowed

    plan = PipelinePlan(
        provider=provider,
        request=ChatRequest(messages=({"role": "user", "content": "hi"},)),
        rails=[ActionRail("check secret", Action.from_callable(check, "check_secret"))],
        chunk_size=chunk,
        context_size=context,
        stream_first=stream_first,
        max_concurrent_checks=max_checks,
    )

    async def main() -> None:
        pipeline = Pipeline(plan)
        with trio.fail_after(HANG_GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipeline.run)
                async for event in pipeline.output:
                    events.append(event)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return events, provider


def released_tokens(events: list[Any]) -> list[str]:
    return _TOKEN.findall("".join(e.text for e in events if isinstance(e, Released)))


def windows_of(tokens: list[str], chunk: int, context: int) -> list[Any]:
    buffer = WindowBuffer(chunk, context)
    windows = buffer.push(tokens)
    last = buffer.finish()
    return windows + ([last] if last else [])


latencies = st.lists(st.sampled_from([0.0, 0.001, 0.05, 0.3]), min_size=1, max_size=5)


@given(st.data(), distinct_tokens(), geometry(), st.booleans(), latencies, st.integers(1, 4))
def test_released_chunks_concatenate_to_the_generated_text_each_token_once(
    data: st.DataObject,
    tokens: list[str],
    geo: tuple[int, int],
    stream_first: bool,
    lat: list[float],
    checks: int,
) -> None:
    """When nothing blocks, the released chunks concatenate to exactly the generated text, every
    token released exactly once and in generation order, and the stream ends with "stop"."""
    events, _ = run_pipeline(
        data.draw(batches(tokens)),
        chunk=geo[0],
        context=geo[1],
        stream_first=stream_first,
        latencies=lat,
        max_checks=checks,
    )
    outputs = [e for e in events if not isinstance(e, tuple)]
    assert "".join(e.text for e in outputs if isinstance(e, Released)) == "".join(tokens)
    assert outputs[-1] == StreamEnded("stop")
    assert all(e.text for e in outputs if isinstance(e, Released))  # no empty chunks


@given(st.data(), distinct_tokens(min_size=1), geometry(), latencies, st.integers(1, 4))
def test_stream_first_false_never_releases_a_token_before_every_window_holding_it_passed(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int], lat: list[float], checks: int
) -> None:
    """With stream_first false, each token reaches the consumer only after every window that
    holds it (as new token or as context) has passed the rail."""
    chunk, context = geo
    events, _ = run_pipeline(
        data.draw(batches(tokens)),
        chunk=chunk,
        context=context,
        stream_first=False,
        latencies=lat,
        max_checks=checks,
    )
    windows = windows_of(tokens, chunk, context)
    passed: set[int] = set()
    seen = 0
    for event in events:
        if isinstance(event, tuple):
            passed.add(event[1])
        elif isinstance(event, Released):
            for _ in _TOKEN.findall(event.text):
                holders = {w.index for w in windows if w.start <= seen < w.end}
                assert holders <= passed, (
                    f"token {seen} released before windows {holders - passed} passed"
                )
                seen += 1
    assert seen == len(tokens)


@given(st.data(), distinct_tokens(min_size=1), geometry(), latencies, st.integers(1, 4))
def test_forbidden_text_within_context_plus_one_tokens_never_leaks_any_fragment(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int], lat: list[float], checks: int
) -> None:
    """With stream_first false, a forbidden text spanning at most C+1 tokens is blocked and not
    one of its tokens is released; the block is the last event and nothing follows it."""
    chunk, context = geo
    length = data.draw(st.integers(1, min(context + 1, len(tokens))))
    start = data.draw(st.integers(0, len(tokens) - length))
    secret = "".join(tokens[start : start + length])
    events, _ = run_pipeline(
        data.draw(batches(tokens)),
        chunk=chunk,
        context=context,
        stream_first=False,
        secret=secret,
        latencies=lat,
        max_checks=checks,
    )
    outputs = [e for e in events if not isinstance(e, tuple)]
    released = released_tokens(outputs)
    assert released == tokens[: len(released)]  # order kept
    assert len(released) <= start  # no fragment of the secret
    assert isinstance(outputs[-1], StreamFailed)
    assert outputs[-1].error.code == "content_blocked"
    assert outputs[-1].finish_reason == "content_filter"
    assert sum(isinstance(e, StreamFailed | StreamEnded) for e in outputs) == 1


@given(
    st.data(), distinct_tokens(min_size=1), geometry(), st.booleans(), latencies, st.integers(1, 4)
)
def test_overlapping_checks_release_exactly_what_one_by_one_checking_releases(
    data: st.DataObject,
    tokens: list[str],
    geo: tuple[int, int],
    stream_first: bool,
    lat: list[float],
    checks: int,
) -> None:
    """With random rail latencies and concurrency limits, the released text and the final event
    are those of sequential checking with an instant rail (stream_first false), or, with
    stream_first true, the released text is a prefix of the reply ending in the same verdict."""
    chunk, context = geo
    use_secret = data.draw(st.booleans())
    secret = None
    if use_secret:
        start = data.draw(st.integers(0, len(tokens) - 1))
        secret = tokens[start]
    split = data.draw(batches(tokens))
    fast, _ = run_pipeline(
        split, chunk=chunk, context=context, stream_first=stream_first, secret=secret
    )
    slow, _ = run_pipeline(
        split,
        chunk=chunk,
        context=context,
        stream_first=stream_first,
        secret=secret,
        latencies=lat,
        max_checks=checks,
    )
    fast_out = [e for e in fast if not isinstance(e, tuple)]
    slow_out = [e for e in slow if not isinstance(e, tuple)]
    assert slow_out[-1] == fast_out[-1]
    if stream_first:
        # Tokens run ahead of checks, so how many precede a block depends on timing.
        text = "".join(e.text for e in slow_out if isinstance(e, Released))
        assert "".join(tokens).startswith(text)
    else:
        assert "".join(e.text for e in slow_out if isinstance(e, Released)) == "".join(
            e.text for e in fast_out if isinstance(e, Released)
        )


@given(st.data(), distinct_tokens(min_size=1), geometry(), st.booleans())
def test_every_token_is_checked_and_the_block_ends_the_stream_in_either_mode(
    data: st.DataObject, tokens: list[str], geo: tuple[int, int], stream_first: bool
) -> None:
    """Whatever the mode and batching, a window holding a forbidden token is always checked and
    blocked: the stream ends with that rail's block. (That generation stops at once is shown,
    with exact token counts, in test_stream_api.test_a_block_cancels_generation_at_once.)"""
    chunk, context = geo
    start = data.draw(st.integers(0, len(tokens) - 1))
    events, _ = run_pipeline(
        data.draw(batches(tokens)),
        chunk=chunk,
        context=context,
        stream_first=stream_first,
        secret=tokens[start],
    )
    outputs = [e for e in events if not isinstance(e, tuple)]
    assert isinstance(outputs[-1], StreamFailed)
    assert outputs[-1].error.param == "check secret"
    blocked = [e[1] for e in events if isinstance(e, tuple) and e[0] == "block"]
    assert blocked, "the rail never saw the forbidden token"
