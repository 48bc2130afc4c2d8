"""A stream cut off from outside (its caller cancelled, its consumer gone) still logs what it
did: the model call it cut off (``status: "cancelled"``), and the input rail it cut off
(``verdict: "cancelled"``), in every form of consuming it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from railstream import LLMRails, RailsConfig

from .helpers import HANG_GUARD_S, USER, SilentAfter, scripted_yaml

Consume = Callable[[LLMRails, list[Any]], Awaitable[None]]


async def under_async_with(rails: LLMRails, streams: list[Any]) -> None:
    async with rails.stream_async(messages=USER) as stream:
        streams.append(stream)
        async for _chunk in stream:
            pass


async def bare_async_for(rails: LLMRails, streams: list[Any]) -> None:
    stream = rails.stream_async(messages=USER)
    streams.append(stream)
    async for _chunk in stream:
        pass


CONSUMERS: dict[str, Consume] = {"async with": under_async_with, "async for": bare_async_for}


def rails_with(
    provider: Any, input_check: Any = None, *, speculative: bool = False, **kw: Any
) -> LLMRails:
    config = json.loads(scripted_yaml(["unused"], **kw))
    if input_check is not None:
        config["rails"]["input"] = {
            "flows": ["check user message"],
            "speculative_generation": speculative,
        }
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(config)), llm=provider)
    if input_check is not None:
        rails.register_action(input_check, "check_user_message")
    return rails


async def slow_pass(user_message: str) -> bool:
    await trio.sleep(10)
    return True


async def cut_off(rails: LLMRails, consume: Consume, after: float) -> Any:
    """Consume a stream of ``rails`` and cancel the consumer from outside after ``after`` s."""
    streams: list[Any] = []
    with trio.fail_after(HANG_GUARD_S):
        with trio.move_on_after(after) as scope:
            await consume(rails, streams)
        # A bare `async for`'s pipeline stops at trio's next turn: the log is ready after it.
        await trio.sleep(0.001)
    assert scope.cancelled_caught, "the stream ended before it was cut off"
    (stream,) = streams
    return stream


@pytest.mark.parametrize("form", sorted(CONSUMERS))
async def test_a_caller_cancelled_from_outside_logs_the_cut_off_model_call(
    autojump_clock: trio.testing.MockClock, form: str
) -> None:
    model = SilentAfter(["a ", "b ", "c "], delay=0.1)
    stream = await cut_off(rails_with(model), CONSUMERS[form], 0.35)
    assert model.cancelled_at == pytest.approx(0.35)
    (call,) = stream.log.llm_calls
    assert (call.task, call.status, call.streamed_tokens) == ("general", "cancelled", 3)


@pytest.mark.parametrize("form", sorted(CONSUMERS))
async def test_speculative_generation_cut_off_before_the_input_verdict_logs_both(
    autojump_clock: trio.testing.MockClock, form: str
) -> None:
    """The consumer leaves while the input rail decides and the model already streams: the
    model call is logged as cancelled, and the input rail's run as cancelled (not a block,
    nor an error: it stopped nothing)."""
    model = SilentAfter(["a ", "b ", "c "], delay=0.1)
    rails = rails_with(model, slow_pass, speculative=True)
    stream = await cut_off(rails, CONSUMERS[form], 0.5)
    assert [(c.task, c.status) for c in stream.log.llm_calls] == [("general", "cancelled")]
    (run,) = stream.log.activated_rails
    assert (run.type, run.name, run.stop) == ("input", "check user message", False)
    assert run.additional_info["verdict"] == "cancelled"
    assert run.duration == pytest.approx(0.5)


@pytest.mark.parametrize("form", sorted(CONSUMERS))
async def test_an_input_rail_cut_off_by_its_caller_is_logged_as_cancelled(
    autojump_clock: trio.testing.MockClock, form: str
) -> None:
    model = SilentAfter(["a "], delay=0.1)
    stream = await cut_off(rails_with(model, slow_pass), CONSUMERS[form], 2)
    assert stream.log.llm_calls == []  # the model was never asked
    (run,) = stream.log.activated_rails
    assert (run.name, run.additional_info["verdict"], run.stop) == (
        "check user message",
        "cancelled",
        False,
    )
