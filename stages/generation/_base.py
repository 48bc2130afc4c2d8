"""What a model provider is to the generation stage."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from .._messages import Usage

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "CollectTokens",
    "Completion",
    "Emit",
    "ProviderOutcome",
    "ChatProvider",
    "count_pieces",
]

ChatMessage = Mapping[str, Any]


class Emit(Protocol):
    """Where a provider's tokens go: the pipeline's first channel."""

    async def __call__(self, tokens: Sequence[str]) -> None:
        """Hand ``tokens`` on, waiting while the pipeline is full (backpressure)."""
        ...

    def offer(self, tokens: Sequence[str]) -> bool:
        """Hand ``tokens`` on if that needs no wait; False, and nothing taken, if it would.

        For providers that time the model's silence: a wait on the pipeline is not the model
        stalling, and knowing when there is none saves re-arming a timer per token.
        """
        ...

    def report_usage(self, usage: Usage) -> None:
        """The call's token counts so far, from a provider that counts as it goes (a local model).

        A call cut off by a block or a consumer that left returns no outcome, so its record
        carries the last counts reported here; a call that completes is recorded with its
        outcome's usage. A provider that learns counts only at the end need not call this.
        """
        ...


class CollectTokens:
    """An :class:`Emit` that keeps every token: a whole reply from a streaming call."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.usage: Usage | None = None

    async def __call__(self, tokens: Sequence[str]) -> None:
        self.tokens.extend(tokens)

    def offer(self, tokens: Sequence[str]) -> bool:
        self.tokens.extend(tokens)
        return True

    def report_usage(self, usage: Usage) -> None:
        self.usage = usage


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
    # Whole tool calls of the reply (``railstream.stages.generation._tool_calls``), handed on at its end.
    tool_calls: tuple[dict[str, Any], ...] = ()


@attrs.frozen(kw_only=True)
class Completion:
    """A whole (non-streamed) reply."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = attrs.field(factory=Usage)
    tool_calls: tuple[dict[str, Any], ...] = ()


class ChatProvider(Protocol):
    """A model: streams a reply through ``emit``, or returns it whole.

    Errors are raised as :class:`railstream.stages._errors.GenerationError` (or ``DownstreamError``).
    Cancellation must stop the model at once: close the HTTP stream, stop the thread.
    """

    @property
    def provider_name(self) -> str: ...

    @property
    def model_name(self) -> str | None: ...

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome: ...

    async def complete(self, request: ChatRequest) -> Completion: ...
