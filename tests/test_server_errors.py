"""`railstream server` under faults: clients that leave, broken configs, failures mid-stream,
upstream errors, and what a client may learn of them. Real server process, real clients
(httpx, the official openai client), a real upstream (tests/openai_server.py).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess
from .test_server import HANG_GUARD_S, demo_copy, post, sse_events, user

# How long the upstream may take to see a client's departure. Generous: the server cancels at
# once (milliseconds); without that the upstream would run on for minutes (the timeouts below),
# so a miss is an assertion failure, never a hang.
LIVENESS_S = 15

UPSTREAM_KEY = "sk-echo-9f8e7d6c5b4a3210"


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def write_config(folder: Path, config: dict[str, Any], actions: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(json.dumps(config, indent=2))
    if actions is not None:
        (folder / "actions.py").write_text(actions)
    return folder


def upstream_model(base_url: str, **parameters: Any) -> dict[str, Any]:
    return {
        "type": "main",
        "engine": "openai",
        "model": "up-model",
        # Timeouts far beyond the liveness bound: only the client leaving can stop a call.
        "parameters": {
            "base_url": base_url,
            "max_retries": 0,
            "first_token_timeout_s": 600,
            **parameters,
        },
    }


def upstream_config(folder: Path, base_url: str, **extra: Any) -> Path:
    write_config(
        folder / "up",
        {"models": [upstream_model(base_url)], **extra},
    )
    return folder


# 1. a client that leaves before the first chunk, or during a whole reply


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole-reply"])
async def test_a_client_that_leaves_before_any_reply_stops_the_upstream_at_once(
    upstream: FakeOpenAI, tmp_path: Path, stream: bool
) -> None:
    upstream.script(Script(stall_before_headers=True))  # a model that never answers
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url))
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=600) as client, trio.open_nursery() as nursery:
                body = {"messages": user(), "stream": stream, "model": "up"}
                nursery.start_soon(
                    lambda: client.post(f"{server.url}/v1/chat/completions", json=body)
                )
                await upstream.request_received.wait()  # the model is working on it
                nursery.cancel_scope.cancel()  # the client gives up and closes its connection
            with trio.move_on_after(LIVENESS_S):
                await upstream.client_gone.wait()
    finally:
        server.stop()
    assert len(upstream.served) == 1
    assert upstream.served[0].disconnected_at is not None, (
        "the upstream request runs on after the client left"
    )
    assert not upstream.served[0].finished


# 2. broken configs: refused at start-up, or a 400 that says what to fix


NO_RAIL = """\
models:
  - type: main
    engine: scripted
    model: m
    parameters:
      responses: ["hi"]
rails:
  output:
    flows:
      - check no secrets
      - check made up
    streaming:
      enabled: true
"""


def test_a_config_whose_flow_has_no_rail_stops_the_server_from_starting(tmp_path: Path) -> None:
    demo = demo_copy(tmp_path / "good")  # a sound config beside it does not save the day
    norail = write_config(tmp_path / "norail", {})
    (norail / "config.yml").write_text(NO_RAIL)
    (norail / "actions.py").write_text((demo / "actions.py").read_text())
    nomodel = write_config(tmp_path / "nomodel", {"rails": {"output": {"flows": []}}})
    started: list[ServerProcess] = []
    try:
        with pytest.raises(RuntimeError, match=r"server exited") as exc:
            started.append(ServerProcess(tmp_path))
    finally:
        for server in started:  # it should not have started; if it did, it must not linger
            server.stop()
    log = str(exc.value)
    assert (
        f"{norail}/config.yml:11: rails.output.flows[1]: output flow 'check made up' has no rail: "
        "it is not a built-in rail and no action named 'check_made_up' is registered"
    ) in log
    assert f"{nomodel}/config.yml:1: models: no model of type main" in log
    assert "Traceback" not in log


async def test_a_stream_request_to_a_config_that_cannot_stream_is_a_400_with_the_fix(
    tmp_path: Path,
) -> None:
    folder = demo_copy(tmp_path / "demo")
    config = folder / "config.yml"
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))
    server = ServerProcess(folder)
    try:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
        async with client:
            with trio.fail_after(HANG_GUARD_S):
                with pytest.raises(openai.APIStatusError) as refused:
                    await client.chat.completions.create(
                        model="demo",
                        messages=[{"role": "user", "content": "hi"}],
                        stream=True,
                    )
                whole = await client.chat.completions.create(
                    model="demo", messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        server.stop()
    assert refused.value.status_code == 400
    assert refused.value.code == "streaming_not_supported"
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["message"] == (
        "config 'demo' cannot stream: output rails are configured but "
        "rails.output.streaming.enabled is not true: set it to true in config.yml to stream "
        "with output rails (or use generate_async)"
    )
    assert whole.choices[0].message.content  # the same config serves whole replies


# 3. a failure after the headers: an error event and [DONE], and a line in the log


# A rail whose exception cannot be turned into text: the rails' fail-closed handling itself
# raises while describing it, and the failure escapes the pipeline to the server.
FLAKY_ACTIONS = """\
from railstream import action


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this failure cannot describe itself")


@action(blocking=False)
def flaky_check(bot_message: str) -> bool:
    if "boom" in bot_message:
        raise Unprintable
    return True
"""


def flaky_config(folder: Path) -> Path:
    scripted = {
        "type": "main",
        "engine": "scripted",
        "model": "m",
        "parameters": {"responses": ["one two three four five six seven eight boom nine ten"]},
    }
    streaming = {"enabled": True, "chunk_size": 4, "context_size": 0, "stream_first": False}
    write_config(
        folder / "flaky",
        {
            "models": [scripted],
            "rails": {"output": {"flows": ["flaky check"], "streaming": streaming}},
        },
        FLAKY_ACTIONS,
    )
    return folder


async def test_a_stream_that_fails_after_its_headers_ends_with_an_error_event_and_done(
    tmp_path: Path,
) -> None:
    server = ServerProcess(flaky_config(tmp_path))
    try:
        with trio.fail_after(HANG_GUARD_S):
            body = {"messages": user(), "stream": True, "model": "flaky"}
            raw, cut = b"", False
            async with (
                httpx.AsyncClient(timeout=30) as client,
                client.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response,
            ):
                assert response.status_code == 200
                try:
                    async for piece in response.aiter_bytes():
                        raw += piece
                except httpx.RemoteProtocolError:
                    cut = True
            assert not cut, "the server cut the connection mid-stream"
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
            texts: list[str] = []

            async def read_all() -> None:
                async for part in await client.chat.completions.create(
                    model="flaky", messages=[{"role": "user", "content": "hi"}], stream=True
                ):
                    texts.append(part.choices[0].delta.content or "")

            async with client:
                with pytest.raises(openai.APIError) as failed:
                    await read_all()
    finally:
        server.stop()
    events = sse_events(raw.decode())
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == "one two three four five six seven eight "
    assert events[-2:] == [
        {
            "error": {
                "message": "the server failed while streaming this reply; its log has the details",
                "type": "internal_error",
                "param": None,
                "code": "stream_failed",
            }
        },
        "[DONE]",
    ]
    assert "".join(texts) == text
    assert failed.value.message == events[-2]["error"]["message"]
    log = server.log()
    assert "config 'flaky': the stream failed" in log
    assert "RuntimeError: this failure cannot describe itself" in log


# 4. where the model lives is never told to a client; the log keeps it


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_errors_never_tell_a_client_where_the_upstream_lives(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.script(Script(tokens=["a ", "b ", "c ", "d ", "e "], drop_after=3))
    port = closed_port()
    nowhere = f"http://127.0.0.1:{port}/v1"
    upstream_config(tmp_path / "a", upstream.base_url)
    write_config(tmp_path / "a" / "gone", {"models": [upstream_model(nowhere)]})
    server = ServerProcess(tmp_path / "a")
    try:
        with trio.fail_after(HANG_GUARD_S):
            dropped = await post(server.url, {"messages": user(), "stream": True, "model": "up"})
            unreachable = [
                await post(server.url, {"messages": user(), "stream": stream, "model": "gone"})
                for stream in (True, False)
            ]
    finally:
        server.stop()
    events = sse_events(dropped.text)
    assert dropped.status_code == 200
    assert events[-2]["error"]["type"] == "generation_error"
    assert events[-2]["error"]["message"].startswith(
        "the provider broke the HTTP protocol (connection dropped mid-reply?): "
    )
    assert [r.status_code for r in unreachable] == [502, 502]
    for response in unreachable:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("upstream_error", "upstream_unreachable")
        assert error["message"].startswith("cannot connect to the provider: ")
    for text in (dropped.text, *(r.text for r in unreachable)):
        assert "127.0.0.1" not in text
        assert str(upstream.port) not in text
        assert str(port) not in text
        assert "POST" not in text
    log = server.log()
    assert f"POST {upstream.base_url}/chat/completions" in log
    assert f"POST {nowhere}/chat/completions" in log


# 5. an upstream's errors are the upstream's, with its Retry-After


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole-reply"])
async def test_upstream_errors_reach_the_client_as_the_upstream_s_with_retry_after(
    upstream: FakeOpenAI, tmp_path: Path, stream: bool
) -> None:
    upstream.script(
        Script(status=401),
        Script(
            status=429,
            retry_after="7",
            error_body='{"error": {"message": "Rate limit reached for up-model"}}',
        ),
    )
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url))
    try:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        async with client:
            with trio.fail_after(HANG_GUARD_S):
                with pytest.raises(openai.APIStatusError) as refused:
                    await client.chat.completions.create(
                        model="up", messages=[{"role": "user", "content": "hi"}], stream=stream
                    )
                with pytest.raises(openai.RateLimitError) as limited:
                    await client.chat.completions.create(
                        model="up", messages=[{"role": "user", "content": "hi"}], stream=stream
                    )
    finally:
        server.stop()
    # Not an AuthenticationError: the client's own key is fine; railstream's was refused.
    assert not isinstance(refused.value, openai.AuthenticationError)
    assert refused.value.status_code == 502
    assert refused.value.body == {
        "message": "the upstream model server answered 401: Incorrect API key provided",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_auth_failed",
        "upstream_status": 401,
    }
    assert limited.value.status_code == 429
    assert limited.value.response.headers.get("retry-after") == "7"
    assert limited.value.code == "upstream_rate_limited"
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["message"] == (
        "the upstream model server answered 429: Rate limit reached for up-model"
    )


# 19. secrets, config ids, the bearer scheme, what health tells


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole-reply"])
async def test_an_upstream_that_echoes_the_key_never_shows_it_to_the_client(
    upstream: FakeOpenAI, tmp_path: Path, stream: bool
) -> None:
    echo = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}. Check your key."}}
    )
    upstream.script(Script(status=401, error_body=echo))
    write_config(
        tmp_path / "up",
        {"models": [{**upstream_model(upstream.base_url), "api_key_env_var": "UP_KEY"}]},
    )
    server = ServerProcess(tmp_path, env={"UP_KEY": UPSTREAM_KEY})
    try:
        with trio.fail_after(HANG_GUARD_S):
            response = await post(server.url, {"messages": user(), "stream": stream, "model": "up"})
    finally:
        server.stop()
    assert upstream.served[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        "the upstream model server answered 401: Incorrect API key provided: ***. Check your key."
    )
    assert UPSTREAM_KEY not in response.text
    assert UPSTREAM_KEY not in server.log()


@pytest.mark.parametrize(
    "config_id", ["demo\n", "demo\r\n", " demo", "demo\x00"], ids=["lf", "crlf", "space", "nul"]
)
async def test_a_config_id_with_anything_around_it_is_refused(
    tmp_path: Path, config_id: str
) -> None:
    server = ServerProcess(demo_copy(tmp_path / "demo"))
    try:
        with trio.fail_after(HANG_GUARD_S):
            response = await post(server.url, {"messages": user(), "config_id": config_id})
    finally:
        server.stop()
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": f"config_id {config_id!r} is not a config id",
        "type": "invalid_request_error",
        "param": "config_id",
        "code": None,
    }


async def test_the_bearer_scheme_is_case_insensitive_and_health_hides_the_configs(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        demo_copy(tmp_path / "demo"), "--auth-token-env", "RS_TOKEN", env={"RS_TOKEN": "tok-123"}
    )
    body = {"messages": user(), "model": "demo"}
    schemes = ["Bearer", "bearer", "BEARER", "bEaReR"]
    try:
        with trio.fail_after(HANG_GUARD_S):
            accepted = [
                await post(server.url, body, headers={"Authorization": f"{s} tok-123"})
                for s in schemes
            ]
            refused = [
                await post(server.url, body, headers={"Authorization": value})
                for value in ("Basic tok-123", "bearer tok-12", "bearertok-123", "tok-123")
            ]
            async with httpx.AsyncClient(timeout=30) as client:
                anonymous = await client.get(f"{server.url}/healthz")
                allowed = await client.get(
                    f"{server.url}/healthz", headers={"Authorization": "bearer tok-123"}
                )
    finally:
        server.stop()
    assert [r.status_code for r in accepted] == [200] * len(schemes)
    assert [r.status_code for r in refused] == [401] * 4
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "ok"})
    assert allowed.json() == {"status": "ok", "configs": ["demo"]}
