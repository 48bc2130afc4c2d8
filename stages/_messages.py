"""The messages that flow between the pipeline's stages, all frozen.

    generation ──GenerationEvent──▶ buffering ──BufferEvent──▶ rails ──OutputEvent──▶ facade
         └───────────────LogRecord──────────────▶ usage ◀──────────────┘

Tokens travel in batches: a provider that reads many deltas at once hands them on together,
so the per-token cost of the channels stays small.
"""

from __future__ import annotations

import array
import bisect
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, islice
from typing import Any, Literal, TypedDict

import attrs
import trio

__all__ = [
    "BufferEvent",
    "EndOfTokens",
    "GenerationEnded",
    "GenerationEvent",
    "GenerationFailed",
    "LLMCall",
    "LogRecord",
    "OutputEvent",
    "Passthrough",
    "RailRun",
    "Released",
    "StreamEnded",
    "StreamError",
    "StreamFailed",
    "Stopwatch",
    "TokenBatch",
    "Usage",
    "Window",
    "token_ends",
]


@attrs.frozen(kw_only=True)
class StreamError:
    """An error as the stream shows it: ``{"error": {message, type, param, code}}``."""

    message: str
    type: str
    param: str | None
    code: str | int

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def blocked(cls, rail: str) -> StreamError:
        return cls(
            message=f"Blocked by {rail} rails.",
            type="guardrails_violation",
            param=rail,
            code="content_blocked",
        )

    @classmethod
    def rail_failed(cls, rail: str, detail: str) -> StreamError:
        return cls(
            message=f"Internal error in {rail} rail: {detail}",
            type="internal_error",
            param=rail,
            code="rail_execution_failure",
        )


def _position(arrival: tuple[int, float]) -> int:
    return arrival[0]


# generation -> buffering


@attrs.frozen
class TokenBatch:
    """Tokens (non-empty content deltas) in generation order; ``at``: when the generation stage
    had them from the model (trio's clock), for the latency of the chunks they end up in."""

    tokens: tuple[str, ...]
    at: float | None = attrs.field(default=None, eq=False)


@attrs.frozen
class GenerationEnded:
    """The model finished; ``finish_reason`` as OpenAI gives it (``stop``, ``length``,
    ``tool_calls``), with the reply's whole tool calls, if any."""

    finish_reason: str
    tool_calls: tuple[dict[str, Any], ...] = ()


@attrs.frozen
class GenerationFailed:
    """The model failed mid-way; no more tokens follow. ``cause``: the provider's exception
    (``ProviderTimeoutError``, ...), raised as it is by the calls that raise."""

    error: StreamError
    cause: Exception | None = attrs.field(default=None, eq=False, repr=False)


GenerationEvent = TokenBatch | GenerationEnded | GenerationFailed


# buffering -> rails


@attrs.frozen(kw_only=True)
class Window:
    """Tokens a rail checks at once, as one ``text``: the first ``context_len`` tokens were in
    the window before.

    ``start`` is the stream position (0-based) of the first token; ``ends[i]`` is where token
    ``start + i`` ends in ``text``. One string and an array of offsets, not a string per
    token: a held window of 200 tokens is a few KiB less per stream (see railstream.stages._buffering).
    """

    index: int
    text: str
    ends: array.array[int] = attrs.field(hash=False)
    context_len: int
    start: int
    # When some of its tokens arrived from the model, (stream position, time) in order: those
    # a held release begins and ends with (see railstream.stages._buffering). Empty when not held.
    arrivals: tuple[tuple[int, float], ...] = attrs.field(default=(), eq=False, repr=False)

    @classmethod
    def of(
        cls, tokens: Sequence[str], *, index: int = 0, context_len: int = 0, start: int = 0
    ) -> Window:
        """A window holding ``tokens`` (the input rails' message, tests)."""
        return cls(
            index=index,
            text="".join(tokens),
            ends=array.array("I", token_ends(tokens)),
            context_len=context_len,
            start=start,
        )

    @property
    def end(self) -> int:
        return self.start + len(self.ends)

    @property
    def tokens(self) -> tuple[str, ...]:
        """Its tokens, one string each (made on each call: rails read ``text``)."""
        text, begin = self.text, 0
        tokens = []
        for end in self.ends:
            tokens.append(text[begin:end])
            begin = end
        return tuple(tokens)

    def text_between(self, first: int, upto: int) -> str:
        """The text of the tokens at stream positions ``first`` to ``upto`` (not included)."""
        return self.text[self._offset(first) : self._offset(upto)]

    def _offset(self, position: int) -> int:
        i = position - self.start
        return self.ends[i - 1] if i > 0 else 0

    def arrived_at(self, position: int) -> float | None:
        """When the token at stream ``position`` arrived: exact for a recorded position, else
        the arrival of the closest one recorded before it (an age never understated)."""
        arrivals = self.arrivals
        i = bisect.bisect_right(arrivals, position, key=_position) - 1
        return arrivals[i][1] if i >= 0 else None


def token_ends(tokens: Iterable[str], offset: int = 0) -> Iterator[int]:
    """Where each token ends in the tokens' joined text, counted from ``offset`` (lazily, at C
    speed: an array extends itself from it without a list between)."""
    # accumulate's first value is the offset it starts from, not a token's end.
    return islice(accumulate(map(len, tokens), initial=offset), 1, None)


@attrs.frozen
class Passthrough:
    """Tokens to release at once (``stream_first``, or no rails), ahead of their check, as one
    text; ``oldest_at`` / ``newest_at``: when the first and the last of them arrived."""

    text: str
    oldest_at: float | None = attrs.field(default=None, eq=False)
    newest_at: float | None = attrs.field(default=None, eq=False)


@attrs.frozen
class EndOfTokens:
    """No more windows: the generation ended (``error`` is None) or failed."""

    finish_reason: str
    error: StreamError | None = None
    cause: Exception | None = attrs.field(default=None, eq=False, repr=False)
    tool_calls: tuple[dict[str, Any], ...] = ()


BufferEvent = Passthrough | Window | EndOfTokens


# rails -> facade


@attrs.frozen
class Released:
    """Text that has passed the rails (or is released ahead of them, with stream_first).

    ``oldest_at`` / ``newest_at``: when its first and its last token arrived from the model
    (trio's clock); None for text the model did not write (a refusal)."""

    text: str
    oldest_at: float | None = attrs.field(default=None, eq=False)
    newest_at: float | None = attrs.field(default=None, eq=False)


@attrs.frozen
class StreamEnded:
    """The reply ended and every window passed; its tool calls are released with this."""

    finish_reason: str
    tool_calls: tuple[dict[str, Any], ...] = ()


@attrs.frozen
class StreamFailed:
    """A block or an error: the last event of a stream."""

    error: StreamError
    finish_reason: Literal["content_filter", "error"]
    cause: Exception | None = attrs.field(default=None, eq=False, repr=False)


OutputEvent = Released | StreamEnded | StreamFailed


# anything -> usage


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts as the provider reported them; None where it reported none."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class Stamps(TypedDict):
    started_at: float
    finished_at: float
    duration: float


class Stopwatch:
    """Times one call or rail run: wall-clock start and end for the log, and a duration on
    trio's monotonic clock (immune to clock changes, and virtual under a test clock)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._start = trio.current_time()

    def elapsed(self) -> float:
        return trio.current_time() - self._start

    def stamps(self) -> Stamps:
        duration = self.elapsed()
        return {
            "started_at": self.started_at,
            "finished_at": self.started_at + duration,
            "duration": duration,
        }


@attrs.frozen(kw_only=True)
class LLMCall:
    """One call to a model: the main generation or a rail's judge call."""

    task: str
    model: str | None
    provider: str
    usage: Usage
    streamed_tokens: int
    status: Literal["completed", "cancelled", "failed"]
    started_at: float
    finished_at: float
    duration: float
    time_to_first_token: float | None = None
    finish_reason: str | None = None
    window_index: int | None = None  # a judge call: the window it judged
    prompt: str | None = None
    completion: str | None = None


@attrs.frozen(kw_only=True)
class RailRun:
    """One rail run on one window (an input rail's window is the user's message)."""

    rail: str
    action: str
    window_index: int
    # cancelled: cut off from outside before it decided (its caller or consumer gone, another
    # rail's block); it stopped nothing.
    verdict: Literal["pass", "block", "error", "cancelled"]
    started_at: float
    finished_at: float
    duration: float
    reason: str | None = None
    return_value: Any = None
    side: Literal["input", "output"] = "output"


LogRecord = LLMCall | RailRun
