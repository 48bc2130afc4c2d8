"""`railstream server` as a subprocess, driven by httpx and by the official openai client."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from .helpers import DEMO
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess

# Real time here (a server in another process): the hang guard is in real seconds, and no
# assertion is made on how long anything took.
HANG_GUARD_S = 60

HELLO = "Hello! I am a scripted model running inside railstream. Every token you see has passed the output rails, window by window."
BLOCK = "Blocked by check no secrets rails."


def demo_copy(target: Path, delay_ms: int = 0) -> Path:
    folder = Path(shutil.copytree(DEMO, target))
    config = folder / "config.yml"
    config.write_text(config.read_text().replace("delay_ms: 40", f"delay_ms: {delay_ms}"))
    return folder


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    configs = tmp_path_factory.mktemp("configs")
    demo_copy(configs / "demo")
    server = ServerProcess(configs)
    yield server
    assert server.stop() == 0, server.log()


def user(text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sse_events(raw: str) -> list[Any]:
    events = []
    for block in raw.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def post(url: str, body: dict[str, Any] | bytes, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        if isinstance(body, bytes):
            return await client.post(f"{url}/v1/chat/completions", content=body, **kw)
        return await client.post(f"{url}/v1/chat/completions", json=body, **kw)


def reply_index(server: ServerProcess) -> None:
    """The scripted demo cycles its replies; tests that need a given one ask for it in turn."""


# listing


async def test_health_configs_and_models(demo_server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{demo_server.url}/healthz")).json() == {
            "status": "ok",
            "configs": ["demo"],
        }
        assert (await client.get(f"{demo_server.url}/v1/rails/configs")).json() == [{"id": "demo"}]
        models = (await client.get(f"{demo_server.url}/v1/models")).json()
        assert models == {
            "object": "list",
            "data": [{"id": "demo", "object": "model", "created": 0, "owned_by": "railstream"}],
        }
        missing = await client.get(f"{demo_server.url}/v2/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found"


# streaming, with httpx


async def stream_until(url: str, wanted: str, **extra: Any) -> list[Any]:
    """Stream replies (the demo cycles three) until one starts with ``wanted``; its events."""
    for _ in range(3):
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"messages": user(), "stream": True, "config_id": "demo", **extra}
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = sse_events((await response.aread()).decode())
        text = "".join(
            e["choices"][0]["delta"].get("content") or ""
            for e in events[:-1]
            if isinstance(e, dict) and e.get("choices")
        )
        if text.startswith(wanted):
            return events
    raise AssertionError(f"no reply started with {wanted!r}")


async def test_a_stream_is_role_first_then_content_then_finish_usage_done(
    demo_server: ServerProcess,
) -> None:
    with trio.fail_after(HANG_GUARD_S):
        events = await stream_until(
            demo_server.url, "Hello!", stream_options={"include_usage": True}
        )
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(
        e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"] for e in events[:-1]
    )
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[1:-3])
    assert content == HELLO
    assert events[-3]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == {"prompt_tokens": 1, "completion_tokens": 21, "total_tokens": 22}
    assert events[-1] == "[DONE]"


BLOCKED_BY = {
    "config_id": "demo",
    "error": {
        "message": BLOCK,
        "type": "guardrails_violation",
        "param": "check no secrets",
        "code": "content_blocked",
    },
}


async def test_a_block_ends_the_reply_with_content_filter_naming_the_rail_and_no_error_event(
    demo_server: ServerProcess,
) -> None:
    """A block is a reply that ended, as a content filter ends one (so that a gateway does
    not take it for a failure): the content_filter chunk names the rail, then usage and
    [DONE]; no error event."""
    with trio.fail_after(HANG_GUARD_S):
        events = await stream_until(demo_server.url, "Sure", stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == []
    assert set(events[-2]["usage"]) <= {"prompt_tokens", "completion_tokens", "total_tokens"}
    final = events[-3]
    assert final["choices"] == [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]
    assert final["guardrails"] == BLOCKED_BY
    assert not any("error" in e for e in events if isinstance(e, dict))
    assert "sk-live" not in json.dumps(events)


async def test_with_block_error_event_a_block_also_ends_with_the_error_event(
    tmp_path: Path,
) -> None:
    """``--block-error-event``: the SPEC's older form, for clients that want the openai
    client's APIError on a block: the content_filter chunk, then the error event, then
    [DONE]."""
    demo_copy(tmp_path / "demo")
    server = ServerProcess(tmp_path, "--block-error-event")
    try:
        with trio.fail_after(HANG_GUARD_S):
            events = await stream_until(server.url, "Sure")
    finally:
        assert server.stop() == 0, server.log()
    assert events[-1] == "[DONE]"
    assert events[-2] == {"error": BLOCKED_BY["error"]}
    assert events[-3]["choices"][0]["finish_reason"] == "content_filter"
    assert events[-3]["guardrails"] == BLOCKED_BY


async def test_a_blocked_whole_reply_is_a_content_filter_completion_naming_the_rail(
    demo_server: ServerProcess,
) -> None:
    with trio.fail_after(HANG_GUARD_S):
        for _ in range(3):
            reply = (await post(demo_server.url, {"messages": user(), "model": "demo"})).json()
            if reply["choices"][0]["finish_reason"] == "content_filter":
                break
    assert reply["choices"][0]["message"]["content"] == "I'm sorry, I can't respond to that."
    assert reply["guardrails"] == BLOCKED_BY
    assert "sk-live" not in json.dumps(reply)


async def test_a_plain_completion_has_usage(demo_server: ServerProcess) -> None:
    with trio.fail_after(HANG_GUARD_S):
        for _ in range(3):
            reply = (await post(demo_server.url, {"messages": user(), "model": "demo"})).json()
            if reply["choices"][0]["message"]["content"].startswith("Hello"):
                break
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": HELLO},
        "finish_reason": "stop",
    }
    assert reply["usage"] == {"prompt_tokens": 1, "completion_tokens": 21, "total_tokens": 22}


# bad requests


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b"{not json", 400, "the request body is not valid JSON", id="malformed-json"),
        pytest.param(b"[1, 2]", 400, "the request body must be a JSON object", id="not-an-object"),
        pytest.param(
            {"config_id": "demo"},
            400,
            "messages: expected a non-empty list of messages",
            id="no-messages",
        ),
        pytest.param(
            {"config_id": "demo", "messages": "hi"},
            400,
            "messages: expected a non-empty list",
            id="messages-string",
        ),
        pytest.param(
            {"config_id": "demo", "messages": [{"role": "bot", "content": "x"}]},
            400,
            "messages[0].role: expected one of",
            id="bad-role",
        ),
        pytest.param(
            {"config_id": "demo", "messages": [{"role": "user"}]},
            400,
            "messages[0].content: expected a string",
            id="no-content",
        ),
        pytest.param(
            {"config_id": "demo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
            400,
            "stream: expected true or false",
            id="stream-string",
        ),
        pytest.param(
            {"config_id": "demo", "messages": [{"role": "user", "content": "x"}], "functions": []},
            400,
            "unsupported parameter: functions",
            id="unknown-param",
        ),
        pytest.param(
            {"config_id": "../demo", "messages": [{"role": "user", "content": "x"}]},
            400,
            "config_id '../demo' is not a config id",
            id="dot-dot",
        ),
        pytest.param(
            {"config_id": "/etc/passwd", "messages": [{"role": "user", "content": "x"}]},
            400,
            "is not a config id",
            id="absolute",
        ),
        pytest.param(
            {"config_id": "a/b", "messages": [{"role": "user", "content": "x"}]},
            400,
            "is not a config id",
            id="separator",
        ),
        pytest.param(
            {"config_id": "nope", "messages": [{"role": "user", "content": "x"}]},
            404,
            "no config 'nope' (available: demo)",
            id="unknown-config",
        ),
        pytest.param(
            {
                "guardrails": {"config_id": "demo", "x": 1},
                "messages": [{"role": "user", "content": "x"}],
            },
            400,
            "guardrails.x: unknown key",
            id="guardrails-shape",
        ),
    ],
)
async def test_bad_requests_get_an_openai_error_body(
    demo_server: ServerProcess, body: dict[str, Any] | bytes, status: int, message: str
) -> None:
    with trio.fail_after(HANG_GUARD_S):
        response = await post(demo_server.url, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_a_body_over_the_limit_is_refused(demo_server: ServerProcess) -> None:
    big = json.dumps({"config_id": "demo", "messages": user("x" * (2 << 20))}).encode()
    with trio.fail_after(HANG_GUARD_S):
        response = await post(demo_server.url, big)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "the request body is larger than 1048576 bytes"


# the official openai client


async def test_the_openai_client_streams_with_usage_and_reads_a_block_as_content_filter(
    demo_server: ServerProcess,
) -> None:
    """The official client reads a block as OpenAI's own content filter: the stream ends
    normally, ``finish_reason`` is ``content_filter``, ``model_extra`` names the rail, and
    no exception is raised."""
    client = openai.AsyncOpenAI(base_url=f"{demo_server.url}/v1", api_key="unused", max_retries=0)
    texts, usages, finishes, extras = [], [], [], []
    with trio.fail_after(HANG_GUARD_S):
        for _ in range(3):
            parts = []
            stream = await client.chat.completions.create(
                model="demo",
                messages=user(),  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"config_id": "demo"},
            )
            async for part in stream:
                if part.choices and part.choices[0].delta.content:
                    parts.append(part.choices[0].delta.content)
                if part.choices and part.choices[0].finish_reason:
                    finishes.append(part.choices[0].finish_reason)
                    extras.append(part.model_extra)
                if part.usage:
                    usages.append(part.usage)
            texts.append("".join(parts))
        plain = await client.chat.completions.create(model="demo", messages=user())  # type: ignore[arg-type]
        await client.close()
    assert HELLO in texts
    assert sorted(finishes) == ["content_filter", "stop", "stop"]
    blocked = extras[finishes.index("content_filter")]
    assert blocked == {"guardrails": BLOCKED_BY}
    assert len(usages) == 3
    assert all(u.total_tokens == u.prompt_tokens + u.completion_tokens for u in usages)
    assert plain.choices[0].message.content
    assert plain.usage is not None


# many clients at once


async def test_200_concurrent_streaming_clients_are_all_served(demo_server: ServerProcess) -> None:
    outcomes: list[str] = []

    async def one(client: httpx.AsyncClient) -> None:
        body = {"messages": user(), "stream": True, "config_id": "demo"}
        async with client.stream(
            "POST", f"{demo_server.url}/v1/chat/completions", json=body
        ) as response:
            assert response.status_code == 200
            events = sse_events((await response.aread()).decode())
        assert events[-1] == "[DONE]"
        finish = events[-2]["choices"][0]["finish_reason"]
        assert finish in ("stop", "content_filter")
        outcomes.append("blocked" if finish == "content_filter" else "text")

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    with trio.fail_after(HANG_GUARD_S * 2):
        async with (
            httpx.AsyncClient(timeout=60, limits=limits) as client,
            trio.open_nursery() as nursery,
        ):
            for _ in range(200):
                nursery.start_soon(one, client)
    assert len(outcomes) == 200
    assert 0 < outcomes.count("blocked") < 200  # the demo's replies cycle: some block, most not


# against a real upstream (the tests' OpenAI-compatible server)


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def upstream_config(folder: Path, base_url: str) -> Path:
    (folder / "up").mkdir(parents=True)
    config = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "up-model",
                "parameters": {"base_url": base_url, "max_retries": 0, "first_token_timeout_s": 20},
            }
        ],
        "rails": {"output": {"flows": [], "streaming": {"enabled": True}}},
    }
    (folder / "up" / "config.yml").write_text(json.dumps(config))
    return folder


async def test_an_upstream_error_before_the_first_token_is_a_real_http_status(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script(
        Script(status=401), Script(status=503, error_body='{"error": {"message": "overloaded"}}')
    )
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url))
    try:
        with trio.fail_after(HANG_GUARD_S):
            first = await post(server.url, {"messages": user(), "stream": True, "model": "up"})
            second = await post(server.url, {"messages": user(), "stream": True, "model": "up"})
    finally:
        server.stop()
    # The upstream's refusal of railstream's key is not the client's key being wrong: a 502
    # that says whose status it was (see README.md, "Server", for the whole mapping).
    assert first.status_code == 502
    assert first.json() == {
        "error": {
            "message": "the upstream model server answered 401: Incorrect API key provided",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_auth_failed",
            "upstream_status": 401,
        }
    }
    assert second.status_code == 503
    assert second.json()["error"]["message"] == "the upstream model server answered 503: overloaded"
    assert second.json()["error"]["upstream_status"] == 503


async def test_a_client_that_disconnects_cancels_the_upstream_request(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script(Script(tokens=[f"w{i} " for i in range(2000)], delay=0.005))
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url))
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"messages": user(), "stream": True, "model": "up"}
                async with client.stream(
                    "POST", f"{server.url}/v1/chat/completions", json=body
                ) as response:
                    seen = 0
                    async for line in response.aiter_lines():
                        seen += line.startswith("data: ")
                        if seen >= 5:
                            break  # the client leaves mid-reply
            await upstream.client_gone.wait()
    finally:
        server.stop()
    served = upstream.served[0]
    assert served.tokens_at_disconnect is not None
    assert served.tokens_written == served.tokens_at_disconnect < 2000
    assert not served.finished


async def test_a_full_server_answers_503_with_retry_after(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.default = Script(tokens=[f"w{i} " for i in range(2000)], delay=0.005)
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url), "--max-concurrent", "2")
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
                started = trio.Semaphore(0)

                async def hold() -> None:
                    body = {"messages": user(), "stream": True, "model": "up"}
                    async with client.stream(
                        "POST", f"{server.url}/v1/chat/completions", json=body
                    ) as response:
                        assert response.status_code == 200
                        started.release()
                        await trio.sleep_forever()

                nursery.start_soon(hold)
                nursery.start_soon(hold)
                await started.acquire()
                await started.acquire()
                refused = await client.post(
                    f"{server.url}/v1/chat/completions", json={"messages": user(), "model": "up"}
                )
                nursery.cancel_scope.cancel()
    finally:
        server.stop()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "server_overloaded"


async def test_bearer_auth_when_asked_for(tmp_path: Path) -> None:
    server = ServerProcess(
        demo_copy(tmp_path / "demo"),
        "--auth-token-env",
        "RS_TOKEN",
        env={"RS_TOKEN": "s3cret-token"},
    )
    try:
        with trio.fail_after(HANG_GUARD_S):
            body = {"messages": user(), "model": "demo"}
            anonymous = await post(server.url, body)
            wrong = await post(server.url, body, headers={"Authorization": "Bearer nope"})
            right = await post(server.url, body, headers={"Authorization": "Bearer s3cret-token"})
            async with httpx.AsyncClient() as client:
                health = await client.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert (anonymous.status_code, wrong.status_code, right.status_code, health.status_code) == (
        401,
        401,
        200,
        200,
    )
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert "s3cret-token" not in server.log()


def test_a_bad_config_stops_the_server_from_starting(tmp_path: Path) -> None:
    folder = demo_copy(tmp_path / "demo")
    (folder / "config.yml").write_text(
        (folder / "config.yml").read_text().replace("chunk_size: 8", "chunk_size: 0")
    )
    with pytest.raises(RuntimeError, match=r"server exited") as exc:
        ServerProcess(tmp_path)
    assert "config.yml:" in str(exc.value)
    assert "rails.output.streaming.chunk_size: must be >= 1, got 0" in str(exc.value)


def test_the_readme_openai_snippet_works_as_printed(demo_server: ServerProcess) -> None:
    import subprocess
    import sys

    from .helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Server (OpenAI-compatible)", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "http://127.0.0.1:8000/v1" in snippet
    code = snippet.replace("http://127.0.0.1:8000", demo_server.url)
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        for _ in range(3)  # the demo cycles its three replies
    ]
    assert any(
        o.returncode == 0 and o.stdout.startswith("Hello!") and "tokens]" in o.stdout
        for o in outputs
    ), outputs
    assert all(o.returncode == 0 for o in outputs), outputs
    blocked = [o for o in outputs if "[blocked" in o.stdout]
    assert len(blocked) == 1
    assert "[blocked: Blocked by check no secrets rails.]" in blocked[0].stdout


async def test_a_count_nobody_reported_is_absent_on_the_wire_never_null_or_zero(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """The upstream reports completion tokens only (as some servers do): the usage chunk and
    the plain completion carry that count, and neither null nor 0 for the others."""
    partial = {"completion_tokens": 4}
    upstream.default = Script(tokens=["a ", "b ", "c ", "d"], usage_fields=partial)
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url))
    try:
        with trio.fail_after(HANG_GUARD_S):
            body = {"messages": user(), "model": "up", "stream_options": {"include_usage": True}}
            streamed = await post(server.url, {**body, "stream": True})
            whole = await post(server.url, {"messages": user(), "model": "up"})
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
            async with client:
                parts = [
                    part
                    async for part in await client.chat.completions.create(
                        model="up",
                        messages=[{"role": "user", "content": "hi"}],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                ]
    finally:
        server.stop()
    events = sse_events(streamed.text)
    (usage_event,) = [e for e in events if isinstance(e, dict) and "usage" in e]
    assert usage_event["usage"] == {"completion_tokens": 4}
    assert whole.json()["usage"] == {"completion_tokens": 4}
    usage = parts[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (None, 4, None)
