"""`railstream server`'s connections under real clients and raw sockets: every response gives
its connection back, idle connections of every protocol close, a body that never finishes or
is too large is answered, bursts of connections wait in the backlog, and JSON that parses but
is no valid request is a 400.

Real time here (a server in another process). Each wait is a liveness bound many times what the
server needs; a test fails by an assertion when the bound passes, and nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import select
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import openai
import pytest

from .server_process import ServerProcess
from .test_server import demo_copy, user

BOUND_S = 20  # far past any timeout the servers below are given
KEEP_ALIVE_S = 1
BODY_TIMEOUT_S = 1
MAX_BODY = 64 << 10
STREAM = json.dumps({"model": "demo", "messages": user(), "stream": True}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    configs = tmp_path_factory.mktemp("configs")
    demo_copy(configs / "demo")
    process = ServerProcess(
        configs,
        "--keep-alive-timeout",
        str(KEEP_ALIVE_S),
        "--body-timeout",
        str(BODY_TIMEOUT_S),
        "--max-body-bytes",
        str(MAX_BODY),
        "--max-concurrent",
        "2",
    )
    yield process
    assert process.stop() == 0, process.log()


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=BOUND_S)


def request(path: str, body: bytes = b"", *, version: str = "HTTP/1.1", headers: str = "") -> bytes:
    method = "POST" if body else "GET"
    head = f"{method} {path} {version}\r\nHost: railstream\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """What the server sent, and whether it closed the connection within the bound."""
    data = b""
    deadline = time.monotonic() + BOUND_S
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            piece = sock.recv(1 << 16)
        except TimeoutError:
            break
        if not piece:
            return data, True
        data += piece
    return data, False


# 13: a streamed response gives its connection back


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        pytest.param("HTTP/1.0", "", id="http-1.0"),
        pytest.param("HTTP/1.1", "Connection: close\r\n", id="connection-close"),
        # Kept alive, then closed by the idle timeout.
        pytest.param("HTTP/1.1", "", id="keep-alive"),
    ],
)
def test_a_streamed_response_gives_its_connection_back(
    server: ServerProcess, version: str, headers: str
) -> None:
    with connect(server) as sock:
        sock.sendall(request("/v1/chat/completions", STREAM, version=version, headers=headers))
        data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]  # h11 answers 1.0 in 1.1
    assert data.rstrip(b"\r\n0").endswith(b"data: [DONE]"), data[-200:]
    assert closed, f"the connection was still open {BOUND_S}s after [DONE]"


def test_a_kept_alive_connection_serves_the_next_request_after_a_stream(
    server: ServerProcess,
) -> None:
    with connect(server) as sock:
        sock.sendall(request("/v1/chat/completions", STREAM) + request("/healthz"))
        data, closed = read_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 ") == 2, data[-300:]
    assert data.endswith(b'{"status":"ok","configs":["demo"]}'), data[-300:]
    assert closed


def test_streams_past_the_fd_limit_are_all_served(tmp_path: Path) -> None:
    """The issue's scenario in small: clients that keep their end open after `[DONE]` (many
    do, waiting for the server to close) must not use up the server's file descriptors."""
    demo_copy(tmp_path / "demo")
    fds = 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds, hard))  # inherited by the server alone
    try:
        server = ServerProcess(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    kept: list[socket.socket] = []
    try:
        for n in range(2 * fds):
            sock = connect(server)
            kept.append(sock)
            sock.sendall(request("/v1/chat/completions", STREAM, headers="Connection: close\r\n"))
            data = b""
            sock.settimeout(BOUND_S / 2)
            try:
                while b"data: [DONE]" not in data and (piece := sock.recv(1 << 16)):
                    data += piece
            except TimeoutError:
                pass
            assert b"data: [DONE]" in data, f"stream {n + 1} of {2 * fds} was not served"
    finally:
        for sock in kept:
            sock.close()
        assert server.stop() == 0, server.log()


# 16: idle connections close, HTTP/2 (h2c) ones too


def h2_client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    return client


def h2_read_until_closed(
    sock: socket.socket, client: h2.connection.H2Connection
) -> tuple[list[h2.events.Event], bool]:
    events: list[h2.events.Event] = []
    deadline = time.monotonic() + BOUND_S
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            piece = sock.recv(1 << 16)
        except TimeoutError:
            break
        if not piece:
            return events, True
        events.extend(client.receive_data(piece))
        sock.sendall(client.data_to_send())
    return events, False


def test_an_idle_h2c_connection_that_never_sent_a_request_is_closed(
    server: ServerProcess,
) -> None:
    with connect(server) as sock:
        client = h2_client()
        sock.sendall(client.data_to_send())  # the preface and SETTINGS, and nothing more
        events, closed = h2_read_until_closed(sock, client)
    assert any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events), events
    assert closed, f"the idle h2c connection was still open after {BOUND_S}s"


def test_an_h2c_stream_ends_and_its_idle_connection_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        client = h2_client()
        headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":scheme", "http"),
            (":authority", "railstream"),
            ("content-type", "application/json"),
        ]
        client.send_headers(1, headers)
        client.send_data(1, STREAM, end_stream=True)
        sock.sendall(client.data_to_send())
        events, closed = h2_read_until_closed(sock, client)
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.data)
    assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    assert closed, f"the idle h2c connection was still open {BOUND_S}s after its stream"


def test_an_idle_http_1_connection_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request("/healthz"))
        data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert closed


def test_a_new_connection_has_its_body_timeout_to_send_its_first_request(
    tmp_path: Path,
) -> None:
    """A request that reaches a busy server after the keep-alive timeout, on a connection it
    just accepted, is answered: the keep-alive timeout is for the time between requests
    (under a burst of 1,000 clients, the idle timer armed at accept closed connections whose
    request had not been read yet). A connection that never sends one is still closed."""
    demo_copy(tmp_path / "demo")
    keep_alive_s, first_request_s = 0.5, 8.0
    process = ServerProcess(
        tmp_path,
        "--keep-alive-timeout",
        str(keep_alive_s),
        "--body-timeout",
        str(first_request_s),
    )
    try:
        with connect(process) as late, connect(process) as silent:
            time.sleep(keep_alive_s * 4)  # the request comes late, as on a busy server
            late.sendall(request("/healthz"))
            data, closed = read_until_closed(late)
            _, silent_closed = read_until_closed(silent)
    finally:
        assert process.stop() == 0, process.log()
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert closed  # then idle: closed by the keep-alive timeout
    assert silent_closed, f"a connection that sent nothing was still open after {BOUND_S}s"


# 14: a body that never finishes frees its slot


def test_bodies_that_never_finish_are_answered_408_and_free_their_slots(
    server: ServerProcess,
) -> None:
    before = server.log()
    # As many as the server's --max-concurrent: without a bound on the body's time, they hold
    # every slot, and every other request gets a 503.
    stuck = [connect(server) for _ in range(2)]
    try:
        for sock in stuck:
            sock.sendall(request("/v1/chat/completions", STREAM)[: -len(STREAM) + 1])
        answers = [read_until_closed(sock) for sock in stuck]
    finally:
        for sock in stuck:
            sock.close()
    for data, closed in answers:
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
        assert b'"the request body was not complete within 1s"' in data
        assert closed
    response = httpx.post(f"{server.url}/v1/chat/completions", content=STREAM, timeout=BOUND_S)
    assert response.status_code == 200
    log = server.log()[len(before) :]
    assert log.count("a request body was not complete after 1s (1 bytes): answered 408") == 2, log
    assert "Traceback" not in log, log


def test_a_client_that_leaves_mid_body_is_logged_in_one_line(server: ServerProcess) -> None:
    before = server.log()
    with connect(server) as sock:
        sock.sendall(request("/v1/chat/completions", STREAM)[: -len(STREAM) + 1])
    # The server notices the close; its slot is free once a full request is answered.
    deadline = time.monotonic() + BOUND_S
    while "a client left" not in server.log()[len(before) :] and time.monotonic() < deadline:
        time.sleep(0.05)
    response = httpx.post(f"{server.url}/v1/chat/completions", content=STREAM, timeout=BOUND_S)
    assert response.status_code == 200
    log = server.log()[len(before) :]
    assert log.count("a client left before its request body was complete (1 bytes)") == 1, log
    assert "Traceback" not in log, log


# 18: an oversized body is answered with a 413, never a reset


# The async clients run on asyncio here: its transports close themselves on a write error,
# dropping an answer already received, so a server that closes on an unread body is seen as a
# connection error (and retried) instead of the 413.


def test_an_oversized_body_gets_a_413_from_the_async_openai_client(server: ServerProcess) -> None:
    async def create() -> openai.APIError | None:
        # No retries: after a reset the client would upload the body twice more.
        client = openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=BOUND_S
        )
        async with client:
            try:
                await client.chat.completions.create(
                    model="demo", messages=[{"role": "user", "content": "x" * (8 << 20)}]
                )
            except openai.APIError as exc:
                return exc
        return None

    error = asyncio.run(create())
    assert not isinstance(error, openai.APIConnectionError), (
        f"no 413, but a connection error: {error.__cause__!r}"
    )
    assert isinstance(error, openai.APIStatusError), error
    assert error.status_code == 413
    assert error.body == {
        "message": f"the request body is larger than {MAX_BODY} bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_oversized_body_gets_a_413_over_the_same_connection(
    server: ServerProcess, declared: bool
) -> None:
    body = b'{"messages": "' + b"x" * (4 << 20) + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    async def post_then_get() -> tuple[int, int]:
        async with httpx.AsyncClient(timeout=BOUND_S) as client:
            response = await client.post(
                f"{server.url}/v1/chat/completions", content=body if declared else pieces()
            )
            # The body was read to its end, so the connection serves the next request.
            return response.status_code, (await client.get(f"{server.url}/healthz")).status_code

    try:
        statuses = asyncio.run(post_then_get())
    except httpx.TransportError as exc:
        raise AssertionError(f"no 413, but {exc!r}") from exc
    assert statuses == (413, 200)


def test_an_oversized_raw_upload_reads_a_413_and_a_clean_close(server: ServerProcess) -> None:
    body = b"x" * (8 << 20)
    with connect(server) as sock:
        try:
            sock.sendall(request("/v1/chat/completions", body, headers="Connection: close\r\n"))
        except OSError as exc:
            raise AssertionError(f"the upload was cut: {exc!r}") from exc
        try:
            data, closed = read_until_closed(sock)
        except ConnectionResetError as exc:
            raise AssertionError("the server reset the connection") from exc
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert closed


def test_a_body_declared_far_too_large_is_answered_before_it_is_sent(tmp_path: Path) -> None:
    # Past what is worth reading and discarding, the 413 goes at once: with a body timeout
    # longer than the bound, an answer within the bound can only be that one.
    demo_copy(tmp_path / "demo")
    server = ServerProcess(tmp_path, "--body-timeout", str(BOUND_S * 30))
    try:
        with connect(server) as sock:
            head = request("/v1/chat/completions", b"x")
            sock.sendall(
                head.replace(b"Content-Length: 1\r\n", b"Content-Length: %d\r\n" % (1 << 40))[:-1]
            )
            data, closed = read_until_closed(sock)
    finally:
        assert server.stop() == 0, server.log()
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert closed


# 17: JSON that parses and is no valid request


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b"[" * 30_000 + b"]" * 30_000,
            "the request body is nested deeper than 64 levels",
            id="deep-past-the-parser",
        ),
        pytest.param(
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}], "stop": '
            + b"[" * 200
            + b"]" * 200
            + b"}",
            "the request body is nested deeper than 64 levels",
            id="deep",
        ),
        pytest.param(
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}],'
            b' "temperature": NaN}',
            "the request body is not valid JSON: NaN is not a JSON value",
            id="nan",
        ),
        pytest.param(
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}],'
            b' "temperature": -Infinity}',
            "the request body is not valid JSON: -Infinity is not a JSON value",
            id="infinity",
        ),
        pytest.param(
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
            "the request body has a lone surrogate in a string",
            id="lone-surrogate",
        ),
        pytest.param(
            b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}],'
            b' "stream": true, "user": "\\udfff"}',
            "the request body has a lone surrogate in a string",
            id="lone-surrogate-streamed",
        ),
    ],
)
async def test_json_that_parses_but_is_no_valid_request_is_a_400(
    server: ServerProcess, body: bytes, message: str
) -> None:
    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        response = await client.post(f"{server.url}/v1/chat/completions", content=body)
    assert response.status_code == 400, response.text[:300]
    assert response.json() == {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    assert "Traceback" not in server.log()


# 15: a burst of connections waits in the backlog


def test_a_burst_of_connections_waits_in_the_backlog(tmp_path: Path) -> None:
    demo_copy(tmp_path / "demo")
    server = ServerProcess(tmp_path)
    burst = 400  # hypercorn's own backlog, 100, holds 101 of them
    host, port = server.url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    # Stopped, the server accepts nothing: every connection of the burst waits in its backlog,
    # or, when that is full, is dropped by the kernel, as in a burst faster than accept().
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        for _ in range(burst):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((host, int(port)))
            sockets.append(sock)
        waiting = set(sockets)
        deadline = time.monotonic() + BOUND_S / 4
        while waiting and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(waiting), [], 0.2)
            for sock in writable:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                waiting.discard(sock)
        connected = burst - len(waiting)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    try:
        assert connected == burst, f"{connected} of {burst} connections got into the backlog"
        for sock in sockets:
            sock.setblocking(True)
            sock.settimeout(BOUND_S)
            sock.sendall(request("/healthz", headers="Connection: close\r\n"))
        for sock in sockets:
            data, _ = read_until_closed(sock)
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    finally:
        for sock in sockets:
            sock.close()
        assert server.stop() == 0, server.log()


STALLING_CONFIG = """
models:
  - type: main
    engine: scripted
    model: scripted
    parameters: {responses: ["A reply."]}
rails:
  output:
    flows: [stall the loop]
    streaming: {enabled: true, chunk_size: 4, context_size: 1}
"""
STALLING_ACTIONS = (
    "import time\n\n"
    "from railstream import action\n\n\n"
    "@action()\n"
    "async def stall_the_loop(bot_message: str) -> bool:\n"
    "    time.sleep(1.0)  # on the event loop, on purpose: a server too busy to read\n"
    "    return True\n"
)


def test_a_request_that_reaches_a_busy_server_on_a_kept_alive_connection_is_answered(
    tmp_path: Path,
) -> None:
    """The next request on a kept-alive connection arrives in time, but the server is too busy
    to read it before the keep-alive timeout passes (here a rail holds its event loop for 1 s,
    twice the timeout): it is answered, not dropped with its connection ("Server disconnected
    without sending a response", 2% of the requests at 500 clients in benchmarks.server).
    Six times over: which of the idle timer and the reader runs first after the stall is
    trio's choice."""
    demo_copy(tmp_path / "demo")
    stalling = tmp_path / "stalling"
    stalling.mkdir()
    (stalling / "config.yml").write_text(STALLING_CONFIG)
    (stalling / "actions.py").write_text(STALLING_ACTIONS)
    process = ServerProcess(tmp_path, "--keep-alive-timeout", "0.5", "--body-timeout", "8")
    stall = json.dumps({"model": "stalling", "messages": user()}).encode()
    answers = []
    try:
        for _ in range(6):
            with connect(process) as kept, connect(process) as other:
                kept.sendall(request("/healthz"))
                first = b""
                while not first.endswith(b'"configs":["demo","stalling"]}'):
                    piece = kept.recv(1 << 16)
                    assert piece, first
                    first += piece
                other.sendall(request("/v1/chat/completions", stall))  # the loop stalls
                time.sleep(0.2)  # within the keep-alive timeout: the client is on time
                kept.sendall(request("/healthz"))
                try:
                    data, _ = read_until_closed(kept)
                except ConnectionResetError:  # closed with the request unread
                    data = b"reset"
                answers.append(data[:12])
                read_until_closed(other)
    finally:
        assert process.stop() == 0, process.log()
    assert answers == [b"HTTP/1.1 200"] * 6, answers
