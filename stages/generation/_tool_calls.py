"""Tool calls in a streamed reply: OpenAI sends each call in pieces, by index, across deltas
(``{"index": 0, "id": ..., "function": {"name": ..., "arguments": "{\\"ci"}}`` then
``{"index": 0, "function": {"arguments": "ty\\": ..."}}``); they are put together here and
handed on whole at the end of the reply (output rails check text, not tool arguments, so a
call is released only once every window of the reply's text has passed)."""

from __future__ import annotations

from typing import Any

from .._errors import ProviderProtocolError

__all__ = ["MAX_TOOL_CALL_CHARS", "ToolCalls"]

# All of a reply's tool-call names and arguments together, at most: the memory per stream
# stays bounded whatever a server sends.
MAX_TOOL_CALL_CHARS = 1 << 20


class ToolCalls:
    """Merges ``delta.tool_calls`` pieces into whole calls, in index order."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}
        self._size = 0

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, pieces: object) -> None:
        if not isinstance(pieces, list):
            raise ProviderProtocolError(
                "malformed chunk from the provider: tool_calls is not a list"
            )
        for piece in pieces:
            if not isinstance(piece, dict) or not isinstance(piece.get("index", 0), int):
                raise ProviderProtocolError(
                    f"malformed chunk from the provider: a tool call piece is {piece!r:.200}"
                )
            call = self._calls.setdefault(
                piece.get("index", 0),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            if isinstance(piece.get("type"), str):
                call["type"] = piece["type"]
            function = piece.get("function") or {}
            if not isinstance(function, dict):
                raise ProviderProtocolError(
                    "malformed chunk from the provider: a tool call's function is not an object"
                )
            for key in ("name", "arguments"):
                part = function.get(key)
                if isinstance(part, str):
                    call["function"][key] += part
                    self._size += len(part)
        if self._size > MAX_TOOL_CALL_CHARS:
            raise ProviderProtocolError(
                f"the provider's tool calls exceed {MAX_TOOL_CALL_CHARS} characters"
            )

    def result(self) -> tuple[dict[str, Any], ...]:
        """The whole calls, as a non-streamed reply's ``message.tool_calls`` holds them."""
        return tuple({"index": index, **call} for index, call in sorted(self._calls.items()))
