"""The fake OpenAI server the tests and benchmarks read from (tests/openai_server.py) keeps
its own promises: a hang or a lost request there would show up as railstream's."""

from __future__ import annotations

import json

import trio

from .openai_server import FakeOpenAI, Script


def _request(model: str, stream: bool) -> bytes:
    body = json.dumps({"model": model, "messages": [], "stream": stream}).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def test_a_request_sent_while_the_previous_reply_is_written_is_answered(
    nursery: trio.Nursery,
) -> None:
    """A keep-alive client may send its next request before the server's last write of the
    reply before it is over (httpx does, the moment it has read the final chunk); the server's
    disconnect watcher reads those bytes during that reply, and must hand them on, not drop
    them (the benchmark client once waited 5 minutes for an answer that never came)."""
    fake = FakeOpenAI()
    fake.script(Script(tokens=["a "] * 20, delay=0.02))
    await nursery.start(fake.serve)
    async with await trio.open_tcp_stream("127.0.0.1", fake.port) as stream:
        await stream.send_all(_request("slow", stream=True))
        received = b""
        while b"text/event-stream" not in received:
            received += await stream.receive_some(65536)
        # The reply is being written (20 tokens, 20 ms apart): the next request comes meanwhile.
        await stream.send_all(_request("bench:tokens=3", stream=False))
        with trio.move_on_after(10):
            while b'"object": "chat.completion"' not in received:
                data = await stream.receive_some(65536)
                if not data:
                    break
                received += data
    assert len(fake.served) == 2
    assert received.count(b"HTTP/1.1 200 OK") == 2, received[-300:]
