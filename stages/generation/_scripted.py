"""``engine: scripted``: the embedded model for demos, tests and benchmarks (no network).

Replies come from ``parameters.responses`` in turn; a string reply is split into tokens as
``\\S+\\s*`` (each token keeps its trailing space), a list is taken as exact tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .._content import content_text
from .._messages import Usage
from ._base import (
    ChatRequest,
    Completion,
    Emit,
    ProviderOutcome,
    count_pieces,
)

__all__ = ["ScriptedProvider", "split_tokens"]

_TOKEN = re.compile(r"\S+\s*")

# With no delay, tokens are handed on in batches of this many, as a fast server's reads would.
_BATCH = 16


def split_tokens(text: str) -> list[str]:
    """The scripted model's tokens for ``text`` (leading whitespace joins the first token)."""
    tokens = _TOKEN.findall(text)
    lead = len(text) - len(text.lstrip())
    if lead and tokens:
        tokens[0] = text[:lead] + tokens[0]
    elif lead:
        tokens = [text]
    return tokens


class ScriptedProvider:
    """Streams scripted replies, paced by ``delay_ms``, reporting usage like a real provider."""

    def __init__(self, *, model: str | None, parameters: Mapping[str, Any]) -> None:
        self._model = model
        replies: Sequence[str | Sequence[str]] = parameters["responses"]
        self._replies = [split_tokens(r) if isinstance(r, str) else list(r) for r in replies]
        self._delay = float(parameters.get("delay_ms", 0)) / 1000.0
        self._report_usage = bool(parameters.get("report_usage", True))
        self._turn = 0
        self.tokens_streamed = 0
        """Tokens this provider has emitted so far, over all calls (for tests and benchmarks)."""

    @property
    def provider_name(self) -> str:
        return "scripted"

    @property
    def model_name(self) -> str | None:
        return self._model

    def _next_reply(self) -> list[str]:
        reply = self._replies[self._turn % len(self._replies)]
        self._turn += 1
        return reply

    def _usage(self, request: ChatRequest, completion_tokens: int) -> Usage:
        if not self._report_usage:
            return Usage()
        prompt = sum(count_pieces(content_text(m.get("content"))) for m in request.messages)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion_tokens,
            total_tokens=prompt + completion_tokens,
        )

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        reply = self._next_reply()
        step = 1 if self._delay > 0 else _BATCH
        # Paced against the clock, not by sleeping a delay after each token: a model's rate
        # does not drift with timer overshoot, and one that was held up by a slow consumer
        # has its next tokens ready at once, as a server's buffer would.
        start = trio.current_time()
        for i in range(0, len(reply), step):
            if self._delay > 0:
                await trio.sleep_until(start + (i + 1) * self._delay)
            batch = reply[i : i + step]
            # Counted before the hand-off: a token is produced even if nobody takes it.
            self.tokens_streamed += len(batch)
            await emit(batch)
        return ProviderOutcome(finish_reason="stop", usage=self._usage(request, len(reply)))

    async def complete(self, request: ChatRequest) -> Completion:
        reply = self._next_reply()
        if self._delay > 0:
            await trio.sleep(self._delay * len(reply))
        self.tokens_streamed += len(reply)
        return Completion(text="".join(reply), usage=self._usage(request, len(reply)))
