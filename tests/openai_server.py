"""A real OpenAI-compatible server for the tests: plain trio sockets on 127.0.0.1.

It speaks HTTP/1.1 with keep-alive and chunked SSE, as vLLM and OpenAI do, and follows a
script per request: tokens, pacing, usage or none (or only some of its counts), an error
status, malformed SSE, a dropped connection, a stall, a body held open after [DONE], an endless
line. It records every request, the tokens it wrote, and when the client went
away: the evidence that cancellation reaches the wire.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import attrs
import trio


@attrs.define
class Script:
    tokens: list[str] = attrs.field(factory=lambda: ["Hello", " from", " the", " server."])
    delay: float = 0.0  # seconds between tokens (a whole reply: it is sent after all of them)
    # Seconds before the first token (a model's prefill and queueing), after the headers.
    first_token_delay: float = 0.0
    usage: bool = True  # a usage chunk when the client asks for one
    usage_fields: dict[str, Any] | None = None  # the usage object as sent, instead of the full one
    status: int = 200
    error_body: str = (
        '{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
    )
    retry_after: str | None = None
    malformed_after: int | None = None  # write a chunk that is not JSON after this many tokens
    # (a whole reply: a body that is not JSON)
    error_after: int | None = None  # send an in-stream error object after this many tokens
    drop_after: int | None = None  # close the connection mid-body after this many tokens
    stall_after: int | None = None  # stop writing (connection open) after this many tokens
    # (a whole reply: after half its body)
    # After [DONE]: end the body, keep it open (never ending it), or drop the connection mid-chunk.
    after_done: Literal["end", "hold", "drop"] = "end"
    endless_line: int | None = None  # then send this many bytes of one line that never ends
    stall_before_headers: bool = False
    done: bool = True  # end with data: [DONE]
    finish_reason: str = "stop"
    one_write: bool = False  # every event in a single write (many deltas per read)
    stamp: bool = False  # each token's text is the time.monotonic_ns() it was sent at
    forbidden_at: int | None = None  # this token is "FORBIDDEN " (for block scenarios)
    # Tool calls ({"id", "function": {"name", "arguments"}}) after the tokens: streamed in
    # pieces (the arguments in three), as OpenAI and vLLM do; a whole reply's message holds them.
    tool_calls: list[dict[str, Any]] = attrs.field(factory=list)

    @classmethod
    def from_model(cls, model: str) -> Script | None:
        """A benchmark's script from its model name: ``bench:tokens=2000:delay=0.001:forbidden=1000``
        (``ttft=0.2``: seconds before the first token)."""
        if not model.startswith("bench:"):
            return None
        fields = dict(part.split("=", 1) for part in model.split(":")[1:])
        tokens = int(fields.get("tokens", "200"))
        forbidden = fields.get("forbidden")
        return cls(
            tokens=["x "] * tokens,
            delay=float(fields.get("delay", "0")),
            first_token_delay=float(fields.get("ttft", "0")),
            stamp=True,
            forbidden_at=int(forbidden) if forbidden else None,
        )


@attrs.define
class Served:
    """What happened to one request."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = 0.0  # trio time the request arrived
    bytes_written: int = 0  # of an endless line
    tokens_written: int = 0
    disconnected_at: float | None = None  # trio time the client's close was seen
    tokens_at_disconnect: int | None = None
    finished: bool = False
    sent_ns: list[int] = attrs.field(factory=list)  # time.monotonic_ns() of each token written
    disconnected_ns: int | None = None


class ClientGone(Exception):
    """The client closed the connection."""


class Drop(Exception):
    """The script says: die mid-reply, as a crashing server does."""


class FakeOpenAI:
    def __init__(self) -> None:
        self.scripts: deque[Script] = deque()
        self.default = Script()
        self.served: list[Served] = []
        self.port = 0
        # Answers a request from its body, as a model would (None: the scripts answer it).
        self.responder: Callable[[dict[str, Any]], Script | None] | None = None
        self.client_gone = trio.Event()  # set when any client goes away mid-reply
        self.request_received = trio.Event()  # set when the first request has been read
        self.connections = 0  # accepted so far
        self.open_connections = 0  # not yet closed by the client
        self._closes = trio.lowlevel.ParkingLot()  # woken whenever a connection closes

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def wait_all_closed(self) -> None:
        """Return once every connection accepted so far has been closed by its client."""
        while self.open_connections:
            await self._closes.park()

    def script(self, *scripts: Script) -> None:
        """The next requests follow these scripts, in turn; then the default one."""
        self.scripts.extend(scripts)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            await self._requests(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client reset the connection between requests: it is done with it
        finally:
            self.open_connections -= 1
            self._closes.unpark_all()

    async def _requests(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:  # keep-alive: one request after another
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (line.split(":", 1) for line in lines[1:])
                }
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                if lines[0].startswith("GET /_stats"):
                    # For tests and benchmarks that run this server as a process.
                    chosen = (
                        self.served[-1:] if lines[0].startswith("GET /_stats/last") else self.served
                    )
                    stats = json.dumps([attrs.asdict(s) for s in chosen]).encode()
                    await stream.send_all(
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(stats)}\r\n\r\n".encode()
                        + stats
                    )
                    continue
                served = Served(
                    body=json.loads(body or b"{}"), headers=headers, received_at=trio.current_time()
                )
                self.served.append(served)
                self.request_received.set()
                script = (
                    Script.from_model(str(served.body.get("model", "")))
                    or (self.responder(served.body) if self.responder is not None else None)
                    or (self.scripts.popleft() if self.scripts else self.default)
                )
                # What the client sends while a reply is written (its next request, sent the
                # moment it has read the last chunk) is read by the watcher, and kept for here.
                early = bytearray()
                try:
                    keep_open = await self._respond(stream, served, script, early)
                except Drop:
                    return  # closing the socket mid-body is the drop
                except (trio.BrokenResourceError, trio.ClosedResourceError, ClientGone):
                    self._gone(served)
                    return
                served.finished = True
                if not keep_open:
                    return
                buffer += early

    def _gone(self, served: Served) -> None:
        if served.disconnected_at is None:
            served.disconnected_at = trio.current_time()
            served.disconnected_ns = time.monotonic_ns()
            served.tokens_at_disconnect = served.tokens_written
            self.client_gone.set()

    async def _respond(
        self, stream: trio.SocketStream, served: Served, script: Script, early: bytearray
    ) -> bool:
        if script.stall_before_headers:
            await self._watch_until_gone(stream, served)
            raise ClientGone
        if script.status != 200:
            body = script.error_body.encode()
            extra = (
                f"Retry-After: {script.retry_after}\r\n" if script.retry_after is not None else ""
            )
            await stream.send_all(
                f"HTTP/1.1 {script.status} Error\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return True
        if not served.body.get("stream"):
            # As vLLM and OpenAI do: nothing is sent until the whole reply is generated.
            await trio.sleep(script.first_token_delay + script.delay * len(script.tokens))
            text = "".join(script.tokens)
            reply = {
                "id": "cmpl-1",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text or None,
                            **({"tool_calls": script.tool_calls} if script.tool_calls else {}),
                        },
                        "finish_reason": script.finish_reason,
                    }
                ],
            }
            if script.usage:
                reply["usage"] = self._usage(script)
            body = json.dumps(reply).encode()
            if script.malformed_after is not None:
                body = b"<html>502 Bad Gateway</html>"  # a proxy's page, not the API's JSON
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            if script.stall_after is not None:
                await stream.send_all(head + body[: len(body) // 2])
                await self._watch_until_gone(stream, served)
                raise ClientGone
            await stream.send_all(head + body)
            return True
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # While writing, watch the socket: a client that closes is seen at once.
        dropped = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_until_gone, stream, served, nursery.cancel_scope, early)
            try:
                await self._write_events(stream, served, script)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._gone(served)
            except Drop:
                dropped = True
            nursery.cancel_scope.cancel()
        if dropped:
            raise Drop
        if served.disconnected_at is not None:
            raise ClientGone
        return True

    @staticmethod
    def _usage(script: Script) -> dict[str, Any]:
        if script.usage_fields is not None:
            return script.usage_fields
        return {
            "prompt_tokens": 7,
            "completion_tokens": len(script.tokens),
            "total_tokens": 7 + len(script.tokens),
        }

    async def _watch_until_gone(
        self,
        stream: trio.SocketStream,
        served: Served,
        scope: trio.CancelScope | None = None,
        early: bytearray | None = None,
    ) -> None:
        """Return once the client has closed its end (recorded, and ``scope`` cancelled);
        what it sends before that goes to ``early`` (never dropped: it is its next request)."""
        try:
            while data := await stream.receive_some(65536):
                if early is not None:
                    early += data
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._gone(served)
        if scope is not None:
            scope.cancel()

    async def _write_events(
        self, stream: trio.SocketStream, served: Served, script: Script
    ) -> None:
        def chunk(payload: dict[str, Any] | str) -> bytes:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            event = f"data: {data}\n\n".encode()
            return f"{len(event):x}\r\n".encode() + event + b"\r\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "c",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": content, "finish_reason": finish}],
            }

        # A content delta is the same JSON around its text: built once, so that at 1,000
        # streams the benchmarks measure the client, not this server's json.dumps.
        before, after = json.dumps(delta({"content": "\x00"})).split(json.dumps("\x00"))

        def content_chunk(token: str) -> bytes:
            event = f"data: {before}{json.dumps(token)}{after}\n\n".encode()
            return b"%x\r\n%b\r\n" % (len(event), event)

        pending: list[bytes] = [chunk(delta({"role": "assistant", "content": ""}))]

        async def flush(force: bool = False) -> None:
            if pending and (force or not script.one_write):
                await stream.send_all(b"".join(pending))
                pending.clear()

        await flush()
        if script.endless_line is not None:
            await self._endless_line(stream, served, script.endless_line)
        if script.first_token_delay:
            await trio.sleep(script.first_token_delay)
        start = trio.current_time()
        for i, token in enumerate(script.tokens):
            if script.drop_after == i:
                await flush(force=True)
                await stream.send_all(
                    b"5\r\ndata:"
                )  # a chunk cut short: the connection dies mid-body
                raise Drop
            if script.stall_after == i:
                await flush(force=True)
                await trio.sleep_forever()
            if script.error_after == i:
                pending.append(
                    chunk(
                        {
                            "error": {
                                "message": "model overloaded",
                                "type": "server_error",
                                "code": 503,
                            }
                        }
                    )
                )
                await flush(force=True)
            if script.malformed_after == i:
                pending.append(chunk("{not json"))
                await flush(force=True)
            if script.delay and not script.one_write:
                await trio.sleep_until(start + (i + 1) * script.delay)  # paced against the clock
            if script.forbidden_at == i:
                token = "FORBIDDEN "
            elif script.stamp:
                token = f"{time.monotonic_ns()} "
            pending.append(content_chunk(token))
            await flush()
            if served.disconnected_at is not None:
                return  # the client was already gone: nothing more reached it
            served.tokens_written += 1
            served.sent_ns.append(time.monotonic_ns())
        for index, call in enumerate(script.tool_calls):
            arguments = call["function"]["arguments"]
            third = max(1, len(arguments) // 3)
            parts = [arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": parts[0]},
            }
            pieces = [head] + [{"index": index, "function": {"arguments": p}} for p in parts[1:]]
            for piece in pieces:
                if script.delay:
                    await trio.sleep(script.delay)  # paced as tokens are
                pending.append(chunk(delta({"tool_calls": [piece]})))
                await flush()
        pending.append(chunk(delta({}, script.finish_reason)))
        if script.usage and served.body.get("stream_options", {}).get("include_usage"):
            usage = self._usage(script)
            pending.append(
                chunk({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
            )
        if script.done:
            pending.append(chunk("[DONE]"))
        if script.after_done == "hold":
            await flush(force=True)
            await trio.sleep_forever()  # the body never ends; the watcher sees the client go
        if script.after_done == "drop":
            pending.append(b"5\r\ndata:")
            await flush(force=True)
            raise Drop
        pending.append(b"0\r\n\r\n")
        await flush(force=True)

    @staticmethod
    async def _endless_line(stream: trio.SocketStream, served: Served, total: int) -> None:
        """``data: xxx...`` with no line end: ``total`` bytes, then silence with the body open.

        Bounded, so that a client without a limit stalls (and fails) instead of growing until
        the machine runs out of memory.
        """
        piece = b"x" * 65536
        data = b"%x\r\n%b\r\n" % (len(piece), piece)
        await stream.send_all(b"6\r\ndata: \r\n")
        while served.bytes_written < total:
            await stream.send_all(data)
            served.bytes_written += len(piece)
        await trio.sleep_forever()


def main() -> None:
    """Run the server alone (for benchmarks): prints its port, serves until killed."""
    import argparse

    parser = argparse.ArgumentParser(description="an OpenAI-compatible SSE server on 127.0.0.1")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per reply")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args()
    server = FakeOpenAI()
    server.default = Script(tokens=[f"tok{i} " for i in range(args.tokens)], delay=args.delay)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            print(port, flush=True)

    trio.run(run)


if __name__ == "__main__":
    main()
