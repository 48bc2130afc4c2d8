"""The server and tools, with the official openai client: tools reach the model, its calls
stream back (whole, once the reply's text passed the rails), descriptive fields are accepted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import trio

from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess
from .test_tool_calls import TOOLS, WEATHER

HANG_GUARD_S = 60  # real seconds: a server in another process


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def configs(folder: Path, base_url: str) -> Path:
    (folder / "up").mkdir(parents=True)
    doc = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "up-model",
                "parameters": {"base_url": base_url, "max_retries": 0},
            }
        ],
        "rails": {"output": {"flows": ["blocklist check output"], "streaming": {"enabled": True}}},
    }
    doc["rails"]["output"]["blocklist"] = {"words": ["forbidden"]}  # type: ignore[index]
    (folder / "up" / "config.yml").write_text(json.dumps(doc))
    return folder


async def test_the_openai_client_calls_tools_through_the_server(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    script = Script(tokens=["Checking. "], tool_calls=[WEATHER], finish_reason="tool_calls")
    upstream.script(script, script)
    server = ServerProcess(configs(tmp_path, upstream.base_url))
    messages = [{"role": "user", "content": "weather in Paris?"}]
    try:
        with trio.fail_after(HANG_GUARD_S):
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
            async with client:
                parts = [
                    p
                    async for p in await client.chat.completions.create(
                        model="up",
                        messages=messages,  # type: ignore[arg-type]
                        tools=TOOLS,  # type: ignore[arg-type]
                        tool_choice="auto",
                        parallel_tool_calls=False,
                        metadata={"team": "search"},
                        store=False,
                        stream=True,
                    )
                ]
                whole = await client.chat.completions.create(
                    model="up",
                    messages=messages,  # type: ignore[arg-type]
                    tools=TOOLS,  # type: ignore[arg-type]
                    service_tier="auto",
                )
    finally:
        server.stop()
    streamed_calls = [c for p in parts if p.choices for c in (p.choices[0].delta.tool_calls or [])]
    assert [(c.id, c.function.name, c.function.arguments) for c in streamed_calls] == [  # type: ignore[union-attr]
        ("call_1", "get_weather", WEATHER["function"]["arguments"])  # type: ignore[index]
    ]
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == "Checking. "
    assert [p.choices[0].finish_reason for p in parts if p.choices][-1] == "tool_calls"
    (call,) = whole.choices[0].message.tool_calls or []
    assert (call.id, call.function.name) == ("call_1", "get_weather")  # type: ignore[union-attr]
    assert whole.choices[0].finish_reason == "tool_calls"
    for served in upstream.served:
        assert served.body["tools"] == TOOLS
        assert not {"metadata", "store", "service_tier"} & set(served.body)


async def test_log_probabilities_are_refused_with_a_reason(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    server = ServerProcess(configs(tmp_path, upstream.base_url))
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as client:
                refused = await client.post(
                    f"{server.url}/v1/chat/completions",
                    json={
                        "model": "up",
                        "messages": [{"role": "user", "content": "x"}],
                        "logprobs": True,
                    },
                )
    finally:
        server.stop()
    assert refused.status_code == 400
    assert (
        refused.json()["error"]["message"]
        == "logprobs: railstream does not return log probabilities"
    )
    assert upstream.served == []
