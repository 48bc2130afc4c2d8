"""The generation stage: one LLM call, its tokens sent on, its usage recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import trio

from .._content import content_text
from .._errors import GenerationError
from .._flow import hand_on
from .._messages import (
    GenerationEnded,
    GenerationEvent,
    GenerationFailed,
    LLMCall,
    LogRecord,
    Stopwatch,
    StreamError,
    TokenBatch,
    Usage,
)
from .._passthrough import passes_through
from .._usage import MAX_TEXT_CHARS
from ._base import ChatProvider, ChatRequest

__all__ = ["prompt_text", "run_generation"]


async def run_generation(
    provider: ChatProvider,
    request: ChatRequest,
    outbox: trio.MemorySendChannel[GenerationEvent],
    usage: trio.MemorySendChannel[LogRecord],
) -> None:
    """Stream ``request`` from ``provider`` into ``outbox``; record the call in ``usage``.

    Ends with :class:`GenerationEnded` or :class:`GenerationFailed`. When cancelled (a block,
    a consumer that left), the provider is cancelled mid-call and the record says so.
    """
    with outbox, usage:
        watch = Stopwatch()
        emit = _Emitter(outbox, watch)
        status: Literal["completed", "cancelled", "failed"] = "cancelled"
        outcome_usage = Usage()
        finish_reason: str | None = None
        final: GenerationEvent | None = None
        try:
            outcome = await provider.stream(request, emit)
            status, outcome_usage, finish_reason = "completed", outcome.usage, outcome.finish_reason
            final = GenerationEnded(outcome.finish_reason, outcome.tool_calls)
        except GenerationError as exc:
            status, final = "failed", GenerationFailed(exc.payload, cause=exc)
        except trio.BrokenResourceError:
            # Downstream stopped listening: nothing more to do for this call.
            status = "cancelled"
        except BaseException as exc:
            # A provider bug must still end the stream with an error, never silently; so must
            # a generator's SystemExit or FunctionTimedOut, which ends this stream alone.
            if passes_through(exc):
                raise
            status = "failed"
            detail = f"{type(exc).__name__}: {exc}"
            final = GenerationFailed(
                StreamError(
                    message=detail, type="generation_error", param=None, code="generation_failed"
                ),
                cause=GenerationError(detail),
            )
        finally:
            record = LLMCall(
                task=request.task,
                model=provider.model_name,
                provider=provider.provider_name,
                # A call that did not complete has no outcome: the provider's last report (if
                # it counts as it goes) is what is known, else None, never a made-up 0.
                usage=outcome_usage if status == "completed" else emit.reported_usage,
                streamed_tokens=emit.streamed,
                status=status,
                **watch.stamps(),
                time_to_first_token=emit.first_token,
                finish_reason=finish_reason,
                # What NeMo's log shows of the main call: its prompt and what it said (so far).
                prompt=prompt_text(request.messages),
                completion=emit.completion(),
            )
            # The record must reach the ledger even when this task is being cancelled; only
            # if the usage stage itself is gone (trio.run shutting down) is there nowhere to go.
            with trio.CancelScope(shield=True), contextlib.suppress(trio.BrokenResourceError):
                await usage.send(record)
        if final is not None:
            try:
                await outbox.send(final)
            except trio.BrokenResourceError:
                pass  # downstream already finished: the end of the reply changes nothing


# The log keeps at most MAX_TEXT_CHARS of a text; the reply is kept to a little less, so that
# its own "not kept" note fits under that cap and the ledger does not cut it again.
_KEPT_CHARS = MAX_TEXT_CHARS - 64
_PARTS = 64  # tokens appended between joins: one join per 64 tokens, not one per token


class _Emitter:
    """The provider's :class:`~railstream.stages.generation._base.Emit`: counts tokens, times the first,
    keeps the provider's last usage report (the record of a call that is cut off)."""

    __slots__ = (
        "_cut",
        "_now",
        "_outbox",
        "_parts",
        "_watch",
        "first_token",
        "reported_usage",
        "streamed",
    )

    def __init__(self, outbox: trio.MemorySendChannel[GenerationEvent], watch: Stopwatch) -> None:
        self._outbox = outbox
        self._watch = watch
        # Each batch is stamped when it is handed on: the clock's own method, looked up once
        # (half the cost of trio.current_time() per batch).
        self._now = trio.lowlevel.current_clock().current_time
        self.first_token: float | None = None
        self.streamed = 0
        self.reported_usage = Usage()
        # The reply so far, for the log: joined every _PARTS tokens, and no longer than
        # _KEPT_CHARS (None once cut), so a stream holds a few KiB of it however long it runs.
        self._parts: list[str] = []
        self._cut = False

    def _count(self, batch: tuple[str, ...]) -> None:
        if self.first_token is None:
            self.first_token = self._watch.elapsed()
        self.streamed += len(batch)
        if not self._cut:
            parts = self._parts
            parts.extend(batch)
            if len(parts) > _PARTS:
                self._join()

    def _join(self) -> None:
        text = "".join(self._parts)
        if len(text) > _KEPT_CHARS:
            text, self._cut = text[:_KEPT_CHARS], True
        self._parts = [text]

    def completion(self) -> str:
        """The reply as far as it is kept for the log."""
        self._join()
        text = self._parts[0]
        if self._cut:
            text += f"... [the rest of its {self.streamed} tokens not kept]"
        return text

    async def __call__(self, tokens: Sequence[str]) -> None:
        batch = _tokens(tokens)
        if batch:
            self._count(batch)
            # Tokens that arrive together (one network read holds many) queue up and move on
            # together; a paced stream still hands each on at once (see railstream.stages._flow).
            await hand_on(self._outbox, TokenBatch(batch, self._now()))

    def offer(self, tokens: Sequence[str]) -> bool:
        batch = _tokens(tokens)
        if batch:
            try:
                self._outbox.send_nowait(TokenBatch(batch, self._now()))
            except trio.WouldBlock:
                return False
            self._count(batch)
        return True

    def report_usage(self, usage: Usage) -> None:
        self.reported_usage = usage


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """A chat request as one text, as NeMo's log shows a prompt: ``Role: content`` per
    message (a lone user message is its own text)."""
    if len(messages) == 1 and messages[0].get("role") == "user":
        return content_text(messages[0].get("content"))
    return "\n\n".join(
        f"{str(m.get('role', '')).capitalize()}: {content_text(m.get('content'))}" for m in messages
    )


def _tokens(tokens: Sequence[str]) -> tuple[str, ...]:
    # A token is a non-empty content delta; empty ones carry nothing to check.
    return tuple(tokens) if all(tokens) else tuple(t for t in tokens if t)
