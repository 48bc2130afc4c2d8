"""A jailbreak classifier on 127.0.0.1, answering as NemoGuard JailbreakDetect does.

POST any path with ``{"input": text}`` (NIM) or ``{"prompt": text}`` (NeMo's own server); the
answer is ``{"jailbreak": bool, "score": float}``, true when the text asks to ignore earlier
instructions. ``status``, ``raw`` and ``stall`` make it fail as real endpoints do.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio


@attrs.define
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class JailbreakServer:
    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Request] = []
        self.status = 200
        self.raw: bytes | None = None  # sent instead of the verdict
        self.stall = False  # read the request, never answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
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
                request = Request(method, path, headers, json.loads(body or b"{}"))
                self.requests.append(request)
                if self.stall:
                    await trio.sleep_forever()
                answer = self.raw if self.raw is not None else self._verdict(request)
                reason = "OK" if self.status == 200 else "Error"
                await stream.send_all(
                    f"HTTP/1.1 {self.status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )

    @staticmethod
    def _verdict(request: Request) -> bytes:
        text = str(request.body.get("input", request.body.get("prompt", "")))
        jailbreak = "ignore previous instructions" in text.lower()
        return json.dumps({"jailbreak": jailbreak, "score": 0.97 if jailbreak else -0.8}).encode()
