"""What a model provider is to the generation stage."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from engine.messages import Usage

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "Emit",
    "ProviderOutcome",
    "ChatProvider",
    "count_pieces",
]

ChatMessage = Mapping[str, Any]

# Emit a batch of tokens downstream; waits while the pipeline is full (backpressure).
Emit = Callable[[Sequence[str]], Awaitable[None]]

_PIECE = re.compile(r"\S+\s*")


def count_pieces(text: str) -> int:
    """Tokens as the scripted model counts them: runs of non-space with their trailing space."""
    return len(_PIECE.findall(text))


@attrs.frozen(kw_only=True)
class ChatRequest:
    """One LLM call: the conversation, the task it serves, per-call parameters."""

    messages: tuple[ChatMessage, ...]
    task: str = "general"
    parameters: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ProviderOutcome:
    """How a streamed call ended."""

    finish_reason: str = "stop"
    usage: Usage = attrs.field(factory=Usage)


@attrs.frozen(kw_only=True)
class Completion:
    """A whole (non-streamed) reply."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = attrs.field(factory=Usage)


class ChatProvider(Protocol):
    """A model: streams a reply through ``emit``, or returns it whole.

    Errors are raised as :class:`engine.errors.GenerationError` (or ``DownstreamError``).
    Cancellation must stop the model at once: close the HTTP stream, stop the thread.
    """

    @property
    def provider_name(self) -> str: ...

    @property
    def model_name(self) -> str | None: ...

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome: ...

    async def complete(self, request: ChatRequest) -> Completion: ...
