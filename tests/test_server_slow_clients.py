"""`railstream server` against clients that send slowly: headers a byte at a time (slowloris)
are cut at the header timeout, and bodies that never finish hold a connection, never a
concurrency slot, while honest clients, late ones included, are served.

Real server process, raw sockets. Each wait is a liveness bound several times what the server
needs; nothing is timed.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from .server_process import ServerProcess
from .test_server import demo_copy
from .test_server_transport import STREAM, connect, read_until_closed, request

HEADER_TIMEOUT_S = 1.0
# Far past the header timeout, far short of what the connection had before it (the
# first-request time, twice over).
TRICKLE_FOR_S = 6.0
FIRST_REQUEST_S = 8.0


def trickle(socks: list[socket.socket], data: bytes, seconds: float) -> list[bool]:
    """Send ``data`` a byte at a time to each socket, 0.2 s apart, for ``seconds`` at most;
    whether the server closed each one by then."""
    closed = [False] * len(socks)
    deadline = time.monotonic() + seconds
    for byte in data:
        if all(closed) or time.monotonic() > deadline:
            break
        for i, sock in enumerate(socks):
            if closed[i]:
                continue
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.0)
                try:
                    closed[i] = sock.recv(1 << 16) == b""
                except BlockingIOError:
                    pass
                finally:
                    sock.settimeout(20)
            except (BrokenPipeError, ConnectionResetError):
                closed[i] = True
        time.sleep(0.2)
    return closed


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout(tmp_path: Path) -> None:
    """Three slowloris connections are closed within a few header timeouts of their first
    byte (they were held for twice the first-request time: 60 s by default); a request whose
    headers come in two pieces within the bound, and one sent late on a new connection (as
    a busy server reads it), are answered."""
    demo_copy(tmp_path / "demo")
    process = ServerProcess(
        tmp_path,
        "--keep-alive-timeout",
        "0.5",
        "--body-timeout",
        str(FIRST_REQUEST_S),
        "--header-timeout",
        str(HEADER_TIMEOUT_S),
    )
    try:
        slow = [connect(process) for _ in range(3)]
        try:
            endless = b"GET /healthz HTTP/1.1\r\nHost: railstream\r\nX-Slow: " + b"a" * 1000
            closed = trickle(slow, endless, TRICKLE_FOR_S)
        finally:
            for sock in slow:
                sock.close()
        with connect(process) as split, connect(process) as late:
            whole = request("/healthz")
            split.sendall(whole[:10])
            time.sleep(HEADER_TIMEOUT_S / 4)
            split.sendall(whole[10:])
            split_answer, _ = read_until_closed(split)
            time.sleep(0.5 * 4)  # past the keep-alive timeout: the request comes late
            late.sendall(whole)
            late_answer, _ = read_until_closed(late)
    finally:
        assert process.stop() == 0, process.log()
    assert closed == [True] * 3, f"slowloris connections still open after {TRICKLE_FOR_S}s"
    assert split_answer.startswith(b"HTTP/1.1 200 "), split_answer[:200]
    assert late_answer.startswith(b"HTTP/1.1 200 "), late_answer[:200]


def test_bodies_that_never_finish_take_no_concurrency_slot(tmp_path: Path) -> None:
    """More incomplete bodies than --max-concurrent (each a Content-Length and one byte of
    it): an honest request is answered all the same, then each of them gets its 408."""
    demo_copy(tmp_path / "demo")
    process = ServerProcess(
        tmp_path, "--max-concurrent", "2", "--body-timeout", str(FIRST_REQUEST_S)
    )
    try:
        stuck = [connect(process) for _ in range(3)]
        try:
            for sock in stuck:
                sock.sendall(request("/v1/chat/completions", STREAM)[: -len(STREAM) + 1])
            time.sleep(0.5)  # their requests have begun: headers read, bodies awaited
            response = httpx.post(
                f"{process.url}/v1/chat/completions", content=STREAM, timeout=FIRST_REQUEST_S
            )
            answers = [read_until_closed(sock)[0] for sock in stuck]
        finally:
            for sock in stuck:
                sock.close()
    finally:
        assert process.stop() == 0, process.log()
    assert response.status_code == 200, response.text
    assert response.text.endswith("data: [DONE]\n\n")
    for data in answers:
        assert data.startswith(b"HTTP/1.1 408 "), data[:200]
