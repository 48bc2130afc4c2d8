"""A chat's HTTP client for ``--server-url``: each reply is one request to a railstream
server's ``/v1/chat/completions``, read whole or as server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from railstream.facade import BLOCKED_REPLY
from railstream.stages.generation import SSEDecoder

__all__ = ["Remote", "open_remote"]


class Remote:
    """The replies of a railstream server, for the chat."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, config_id: str | None, token: str | None
    ) -> None:
        self.client = client
        base = url.rstrip("/")
        # The server's address; written as an OpenAI client's base_url (.../v1), the same one.
        base = base.removesuffix("/v1")
        self.url = base + "/v1/chat/completions"
        self.config_id = config_id
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.refusal = BLOCKED_REPLY  # the server's config is not known here: NeMo's default

    async def reply(
        self, history: list[dict[str, str]], streaming: bool, on_text: Callable[[str], None]
    ) -> dict[str, Any] | None:
        body: dict[str, Any] = {"messages": history, "stream": streaming}
        if self.config_id:
            body["config_id"] = self.config_id
        try:
            async with self.client.stream(
                "POST", self.url, json=body, headers=self.headers
            ) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    try:
                        error = dict(json.loads(raw))
                        if response.status_code == 404 and _code(error) != "config_not_found":
                            # No such path (not an unknown config): not the server's address.
                            return _not_the_address(self.url)
                        return error
                    except ValueError:
                        if response.status_code == 404:
                            return _not_the_address(self.url)
                        return {
                            "error": {
                                "message": f"HTTP {response.status_code}: {raw[:200]!r}",
                                "type": "error",
                            }
                        }
                if not streaming:
                    reply = json.loads(await response.aread())
                    on_text(reply["choices"][0]["message"]["content"])
                    return None
                decoder = SSEDecoder()
                async for piece in response.aiter_bytes():
                    for event in decoder.feed(piece):
                        if event.data == "[DONE]":
                            return None
                        data = json.loads(event.data)
                        if "error" in data:
                            return dict(data)
                        blocked = (data.get("guardrails") or {}).get("error")
                        if blocked:
                            # A block ends the reply with content_filter, the rail named here.
                            return {"error": blocked}
                        for choice in data.get("choices", []):
                            content = (choice.get("delta") or {}).get("content")
                            if content:
                                on_text(content)
        except httpx.HTTPError as exc:
            return {"error": {"message": f"cannot reach {self.url}: {exc}", "type": "error"}}
        return None


def _code(error: dict[str, Any]) -> object:
    body = error.get("error")
    return body.get("code") if isinstance(body, dict) else None


def _not_the_address(url: str) -> dict[str, Any]:
    message = (
        f"{url} was not found: give --server-url as the railstream server's address, "
        "http://HOST:PORT (or http://HOST:PORT/v1)"
    )
    return {"error": {"message": message, "type": "error"}}


@asynccontextmanager
async def open_remote(url: str, config_id: str | None, token: str | None) -> AsyncIterator[Remote]:
    """A ``Remote`` for the server at ``url``, with a client open for the whole chat."""
    # No read timeout: a reply, streamed or whole, takes as long as the model does.
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        yield Remote(client, url, config_id, token)
