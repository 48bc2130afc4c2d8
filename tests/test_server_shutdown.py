"""`railstream server` on SIGTERM with requests in flight: each stream ends with the
shutting-down error event and ``[DONE]`` (never a cut connection), a whole reply still being
made gets a 503, every upstream request is cancelled, new connections are refused, and the
process exits 0 once the grace period is over.

Real time here (a server in another process, a real upstream in this one). Each wait is a
liveness bound many times what the server needs; nothing is timed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from .helpers import ROOT
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess
from .test_server import HANG_GUARD_S, sse_events, upstream_config, user

SHUTTING_DOWN = "the server is shutting down; retry the request"
# Far longer than any test waits: a reply still running when the grace ends, whatever the load.
SLOW = Script(tokens=[f"w{i} " for i in range(2000)], delay=0.05)
REFUSED_BOUND_S = 20  # the listener closes on the signal; a bound well within the hang guard
STREAM_BODY = {"messages": user(), "stream": True, "model": "up"}


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def is_shutting_down_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("error") == {
        "message": SHUTTING_DOWN,
        "type": "server_error",
        "param": None,
        "code": "server_shutting_down",
    }


async def read_stream(
    client: httpx.AsyncClient, url: str, started: trio.Semaphore, into: list[list[Any]]
) -> None:
    """Read one stream to its end; ``started`` once its first content has arrived."""
    async with client.stream("POST", f"{url}/v1/chat/completions", json=STREAM_BODY) as response:
        assert response.status_code == 200
        raw = ""
        released = False
        # A cut connection (a chunked body never finished) raises here: a clean end does not.
        async for text in response.aiter_text():
            raw += text
            if not released and raw.count("data: ") >= 3:
                released = True
                started.release()
    into.append(sse_events(raw))


async def wait_for_exit(server: ServerProcess) -> int:
    """The server's exit code; an assertion error if it is still running after the bound."""
    try:
        return await trio.to_thread.run_sync(server.process.wait, HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server did not exit:\n{server.log()}") from None


async def until_refused(url: str) -> bool:
    """Whether the server stops accepting connections within the bound."""
    with trio.move_on_after(REFUSED_BOUND_S):
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                try:
                    await client.get(f"{url}/healthz", headers={"connection": "close"})
                except httpx.ConnectError:
                    return True
                await trio.sleep(0.05)
    return False


async def test_sigterm_ends_every_stream_with_an_error_and_done_cancels_upstreams_and_exits_0(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.default = SLOW
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url), "--shutdown-grace-s", "1")
    streams: list[list[Any]] = []
    openai_errors: list[BaseException] = []
    openai_parts: list[str] = []
    try:
        with trio.fail_after(HANG_GUARD_S):
            started = trio.Semaphore(0)
            client = openai.AsyncOpenAI(
                base_url=f"{server.url}/v1", api_key="unused", max_retries=0
            )

            async def with_openai() -> None:
                stream = await client.chat.completions.create(
                    model="up",
                    messages=user(),  # type: ignore[arg-type]
                    stream=True,
                )
                try:
                    async for part in stream:
                        if part.choices and part.choices[0].delta.content:
                            openai_parts.append(part.choices[0].delta.content)
                            if len(openai_parts) == 1:
                                started.release()
                except openai.APIError as exc:
                    openai_errors.append(exc)

            async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(read_stream, http, server.url, started, streams)
                nursery.start_soon(with_openai)
                for _ in range(4):
                    await started.acquire()
                server.process.send_signal(signal.SIGTERM)
            await client.close()
            code = await wait_for_exit(server)
            await upstream.wait_all_closed()
    finally:
        server.stop()
    log = server.log()
    assert len(streams) == 3
    for events in streams:
        assert events[-1] == "[DONE]", events[-3:]
        assert is_shutting_down_event(events[-2]), events[-3:]
        assert all("choices" in e for e in events[:-2]), "only chunks before the end"
    # The official client reads the event as the server's error, not as a dropped connection.
    assert [type(e) for e in openai_errors] == [openai.APIError]
    assert openai_errors[0].args[0] == SHUTTING_DOWN, openai_errors
    assert openai_parts
    assert len(upstream.served) == 4
    for served in upstream.served:
        assert served.disconnected_at is not None, "an upstream request was left running"
        assert not served.finished
    assert code == 0, log
    assert "shut down on SIGTERM: 4 streams and 0 requests still running after the 1s grace" in log


async def test_during_the_grace_a_short_stream_finishes_a_whole_reply_gets_503_and_no_new_connection(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    # In order of arrival: a whole reply that never completes (half its body, then silence,
    # watching for the disconnect), a short stream, and a stream whose model falls silent: the
    # shutdown must end it while it waits for a token that never comes.
    upstream.script(
        Script(stall_after=0),
        Script(tokens=[f"s{i} " for i in range(10)], delay=0.1),
        Script(tokens=[f"w{i} " for i in range(2000)], stall_after=450),  # 2 windows of 200
    )
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url), "--shutdown-grace-s", "5")
    whole: list[httpx.Response] = []
    streams: list[list[Any]] = []
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:

                async def ask_whole() -> None:
                    body = {"messages": user(), "model": "up"}
                    whole.append(await http.post(f"{server.url}/v1/chat/completions", json=body))

                nursery.start_soon(ask_whole)
                await upstream.request_received.wait()  # the order of arrival picks the scripts
                short_started, slow_started = trio.Semaphore(0), trio.Semaphore(0)
                nursery.start_soon(read_stream, http, server.url, short_started, streams)
                await short_started.acquire()
                nursery.start_soon(read_stream, http, server.url, slow_started, streams)
                await slow_started.acquire()
                server.process.send_signal(signal.SIGTERM)
                assert await until_refused(server.url), "it still accepts connections"
                # Refused while both long replies were still within the grace.
                still_running = not whole and len(streams) <= 1
            code = await wait_for_exit(server)
            await upstream.wait_all_closed()
    finally:
        server.stop()
    log = server.log()
    assert still_running
    short, slow = streams
    assert short[-2]["choices"][0]["finish_reason"] == "stop", short[-3:]
    assert short[-1] == "[DONE]"
    assert is_shutting_down_event(slow[-2]), slow[-3:]
    assert slow[-1] == "[DONE]"
    [reply] = whole
    assert reply.status_code == 503, reply.text
    assert reply.json() == {
        "error": {
            "message": SHUTTING_DOWN,
            "type": "server_error",
            "param": None,
            "code": "server_shutting_down",
        }
    }
    whole_served, short_served, slow_served = upstream.served
    assert short_served.finished
    for served in (whole_served, slow_served):
        assert served.disconnected_at is not None, "an upstream request was left running"
        assert not served.finished
    assert code == 0, log
    assert "shut down on SIGTERM: 1 streams and 1 requests still running after the 5s grace" in log


async def test_a_second_signal_ends_the_streams_at_once(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.default = SLOW
    # A grace far past the hang guard: only the second signal can end the stream in time.
    server = ServerProcess(
        upstream_config(tmp_path, upstream.base_url), "--shutdown-grace-s", "3600"
    )
    streams: list[list[Any]] = []
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
                started, ended = trio.Semaphore(0), trio.Event()

                async def read() -> None:
                    await read_stream(http, server.url, started, streams)
                    ended.set()

                nursery.start_soon(read)
                await started.acquire()
                server.process.send_signal(signal.SIGTERM)
                assert await until_refused(server.url), "it still accepts connections"
                server.process.send_signal(signal.SIGINT)  # the first has been handled
                with trio.move_on_after(REFUSED_BOUND_S):
                    await ended.wait()
                assert streams, "the stream was still running after the second signal"
            code = await wait_for_exit(server)
    finally:
        server.stop()
    [events] = streams
    assert is_shutting_down_event(events[-2]), events[-3:]
    assert events[-1] == "[DONE]"
    assert code == 0, server.log()
    assert "shut down on SIGTERM: 1 streams and 0 requests still running" in server.log()


async def test_a_request_whose_body_arrives_after_sigterm_gets_a_503(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    server = ServerProcess(upstream_config(tmp_path, upstream.base_url), "--shutdown-grace-s", "5")
    body = json.dumps({"messages": user(), "model": "up"}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: railstream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with trio.fail_after(HANG_GUARD_S):
            host, port = server.url.removeprefix("http://").split(":")
            sock = await trio.open_tcp_stream(host, int(port))
            async with sock:
                await sock.send_all(head + body[:5])
                # Answered on a later connection: this one has been accepted (and is being
                # read), so the signal does not find it waiting in the backlog.
                async with httpx.AsyncClient(timeout=30) as http:
                    assert (await http.get(f"{server.url}/healthz")).status_code == 200
                server.process.send_signal(signal.SIGTERM)
                assert await until_refused(server.url), "it still accepts connections"
                await sock.send_all(body[5:])
                answer = b""
                while piece := await sock.receive_some(65536):
                    answer += piece
            code = await wait_for_exit(server)
    finally:
        server.stop()
    head_out, _, body_out = answer.partition(b"\r\n\r\n")
    assert head_out.startswith(b"HTTP/1.1 503 "), answer
    assert json.loads(body_out)["error"]["code"] == "server_shutting_down", answer
    assert upstream.served == [], "a model was asked for a request refused at shutdown"
    assert code == 0, server.log()


@pytest.mark.parametrize("grace", ["-1", "nan"])
def test_a_negative_grace_is_refused(tmp_path: Path, grace: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "railstream",
            "server",
            "--config",
            str(tmp_path),
            "--shutdown-grace-s",
            grace,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "railstream server: --shutdown-grace-s must be 0 or more\n"
    assert done.stdout == ""
