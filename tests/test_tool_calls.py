"""Tool calls through the rails: the model's calls, streamed in pieces, come out whole at the
end of a reply whose text passed every window; a blocked reply releases none."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from railstream import LLMRails

from .helpers import HANG_GUARD_S, USER
from .openai_server import FakeOpenAI, Script
from .test_openai_provider import config

WEATHER = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def rails_for(server: FakeOpenAI) -> LLMRails:
    rails = LLMRails(config(server.base_url, flows=["no secret"]))
    rails.register_action(lambda bot_message: "SECRET" not in bot_message, "no_secret")
    return rails


async def stream(rails: LLMRails) -> tuple[list[Any], Any]:
    options = {"llm_params": {"tools": TOOLS, "tool_choice": "auto"}}
    async with rails.stream_async(messages=USER, options=options, include_metadata=True) as s:
        chunks = [c async for c in s]
    return chunks, s


async def test_a_streamed_tool_call_comes_out_whole_after_the_text_passed(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    server.script(
        Script(tokens=["Let ", "me ", "check."], tool_calls=[WEATHER], finish_reason="tool_calls")
    )
    rails = rails_for(server)
    with trio.fail_after(HANG_GUARD_S):
        chunks, s = await stream(rails)
        await rails.aclose()
    assert "".join(c["text"] for c in chunks if "text" in c) == "Let me check."
    assert chunks[-1]["finish_reason"] == "tool_calls"
    assert chunks[-1]["tool_calls"] == [{"index": 0, **WEATHER}]
    assert s.tool_calls == [{"index": 0, **WEATHER}]
    sent = server.served[0].body
    assert (sent["tools"], sent["tool_choice"]) == (TOOLS, "auto")


async def test_a_reply_of_tool_calls_only_is_not_timed_out_waiting_for_text(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    """Six pieces 1.5 s apart: 9 s, past a 4 s first-token deadline that only text would
    lift, and each gap within the 2 s idle timeout that takes over at the first piece."""
    second = {**WEATHER, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
    server.script(
        Script(tokens=[], tool_calls=[WEATHER, second], finish_reason="tool_calls", delay=1.5)
    )
    rails = LLMRails(config(server.base_url, params={"first_token_timeout_s": 4}))
    with trio.fail_after(HANG_GUARD_S):
        chunks, s = await stream(rails)
        await rails.aclose()
    assert [c for c in chunks if "text" in c or "error" in c] == []
    assert s.tool_calls == [{"index": 0, **WEATHER}, {"index": 1, **second}]


async def test_a_blocked_reply_releases_no_tool_call(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    server.script(
        Script(tokens=["the ", "SECRET ", "is"], tool_calls=[WEATHER], finish_reason="tool_calls")
    )
    rails = rails_for(server)
    with trio.fail_after(HANG_GUARD_S):
        chunks, s = await stream(rails)
        await rails.aclose()
    assert chunks[-2]["error"]["code"] == "content_blocked"
    assert "tool_calls" not in chunks[-1]
    assert s.tool_calls == []


async def test_a_whole_reply_carries_its_tool_calls_in_the_message(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    server.script(Script(tokens=[], tool_calls=[WEATHER], finish_reason="tool_calls"))
    rails = rails_for(server)
    with trio.fail_after(HANG_GUARD_S):
        reply = await rails.generate_async(messages=USER, options={"llm_params": {"tools": TOOLS}})
        await rails.aclose()
    assert reply.response[0] == {  # type: ignore[union-attr]
        "role": "assistant",
        "content": "",
        "tool_calls": [{"index": 0, **WEATHER}],
    }
    assert json.loads(reply.response[0]["tool_calls"][0]["function"]["arguments"]) == {  # type: ignore[union-attr]
        "city": "Paris",
        "unit": "celsius",
    }
