"""``engine: openai``: any OpenAI-compatible server (OpenAI, vLLM, NIM, Ollama, llama.cpp, ...).

``POST {base_url}/chat/completions`` with ``stream: true``; the SSE reply is decoded as it
arrives and every read's deltas are emitted together. Before the first token, connection
failures, 429 and 5xx are retried with jittered backoff (honouring ``Retry-After``) within the
first-token deadline; after it, a failure ends the reply with an error. Cancellation (a block,
a consumer that left) closes the HTTP response at once. A whole (non-streamed) reply, retries
included, is timed by ``request_timeout_s`` alone.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import httpx
import trio

from railstream.config_schema import ModelConfig, OpenAISettings, redacted

from .._errors import (
    DownstreamError,
    GenerationError,
    ProviderProtocolError,
    ProviderTimeoutError,
)
from .._messages import Usage
from ._base import ChatRequest, Completion, Emit, ProviderOutcome
from ._http_client import HttpClients
from ._http_errors import map_httpx_error
from ._sse import SSEDecoder, SSELimitError
from ._tool_calls import ToolCalls

__all__ = ["OpenAIProvider", "resolve_api_key"]

T = TypeVar("T")

# Errors worth another attempt before the first token: the server may recover.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_TRANSPORT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
_MAX_MESSAGE = 500
# A stall is reported between idle_timeout_s and idle_timeout_s * (1 + 1/8) after the last piece.
_STALL_SLACK_DIVISOR = 8
# After [DONE] the reply is whole; the body's end is awaited this long at most (capped by the
# idle timeout), so that its connection can be pooled. Servers send it with [DONE] or just after.
_DRAIN_AFTER_DONE_S = 0.5


def resolve_api_key(model: ModelConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """``parameters.api_key``, else the variable named by ``api_key_env_var``, else OPENAI_API_KEY.

    A named variable that is not set is an error: the user asked for that key.
    """
    key = model.parameters.get("api_key")
    if isinstance(key, str) and key:
        return key
    if "api_key" in model.parameters and key is None:
        return None  # no key, said so (engine nim without NVIDIA_API_KEY): not OpenAI's
    if model.api_key_env_var:
        value = environ.get(model.api_key_env_var)
        if not value:
            raise ValueError(
                f"model {model.type!r}: api_key_env_var: "
                f"environment variable {model.api_key_env_var} is not set"
            )
        return value
    return environ.get("OPENAI_API_KEY") or None


def _provider_message(body: bytes, status: int) -> str:
    """The provider's own words for an error reply (OpenAI's error.message, or the text)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(parsed.get("detail"), str):
            text = parsed["detail"]
        elif isinstance(parsed.get("message"), str):
            text = parsed["message"]
    return text[:_MAX_MESSAGE] or f"HTTP {status} from the provider"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _usage(raw: object) -> Usage:
    if not isinstance(raw, dict):
        return Usage()

    def count(name: str) -> int | None:
        value = raw.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Usage(
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        total_tokens=count("total_tokens"),
    )


def _joined_surrogates(text: str) -> str:
    """``text`` with each surrogate pair made one character, and a lone surrogate U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _in_stream_error(error: object) -> GenerationError:
    if isinstance(error, dict):
        message = str(error.get("message") or error)[:_MAX_MESSAGE]
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            return DownstreamError(code, message)
        return GenerationError(message)
    return GenerationError(str(error)[:_MAX_MESSAGE])


class OpenAIProvider:
    """Streams chat completions from an OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        model: ModelConfig,
        clients: HttpClients,
        environ: Mapping[str, str] = os.environ,
        rng: random.Random | None = None,
    ) -> None:
        """``rng`` draws the retry jitter (tests pass a seeded one)."""
        assert model.model  # checked when the config loaded
        self._model = model.model
        self._settings = OpenAISettings.from_parameters(model.parameters)
        self._clients = clients
        self._url = self._settings.base_url.rstrip("/") + "/chat/completions"
        # Where, for error messages: the endpoint, never a key.
        self._where = f"POST {redacted(self._url)}"  # a password in the URL is never shown
        headers = {"Accept": "text/event-stream"}
        key = resolve_api_key(model, environ)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._headers = headers
        connect = self._settings.connect_timeout_s
        # Reads are timed by railstream (first token, idle), so their limits can differ.
        self._timeout = httpx.Timeout(connect=connect, read=None, write=connect, pool=connect)
        # Its own generator, seeded from the OS: a program that seeds the global one (common in
        # evaluations) would otherwise make every process jitter alike, in lock-step again.
        self._random = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self._model!r}, url={redacted(self._url)!r})"

    @property
    def provider_name(self) -> str:
        return "openai"

    @property
    def model_name(self) -> str | None:
        return self._model

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = {**self._settings.body, **request.parameters}
        body.update(model=self._model, messages=list(request.messages), stream=stream)
        if stream and self._settings.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        deadline = trio.current_time() + self._settings.first_token_timeout_s
        body = self._body(request, stream=True)
        # Until the first token, everything (connecting, retries, headers, the first bytes) is
        # within one deadline; the first token lifts it, and the idle timeout takes over.
        with trio.CancelScope(deadline=deadline) as first_token:
            return await self._post(
                body, deadline, lambda response: self._read_stream(response, emit, first_token)
            )
        raise self._no_reply()

    async def complete(self, request: ChatRequest) -> Completion:
        # A whole reply's headers come when its last token is generated, so the first-token
        # deadline cannot time it: one limit sized for a whole reply covers every step.
        limit = self._settings.request_timeout_s
        deadline = trio.current_time() + limit
        body = self._body(request, stream=False)
        with trio.move_on_at(deadline):
            return await self._post(body, deadline, self._read_whole)
        raise ProviderTimeoutError(
            f"no whole reply from the provider within {limit:g}s (request_timeout_s)"
            f" ({self._where})"
        )

    def _no_reply(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"no reply from the provider within {self._settings.first_token_timeout_s:g}s"
            f" ({self._where})"
        )

    async def _post(
        self, body: dict[str, Any], deadline: float, on_ok: Callable[[httpx.Response], Awaitable[T]]
    ) -> T:
        """POST, retrying what may recover until a 200 arrives; then hand the response on."""
        attempt = 0
        while True:
            answered = False
            wait: float | None = None
            try:
                async with self._clients.stream(
                    "POST", self._url, json=body, headers=self._headers, timeout=self._timeout
                ) as response:
                    answered = True
                    if response.status_code == 200:
                        return await on_ok(response)
                    error: GenerationError = await self._status_error(response, deadline)
                    retry = response.status_code in _RETRY_STATUSES
                    wait = _retry_after(response)
            except httpx.HTTPError as exc:
                error = map_httpx_error(exc, self._where)
                # Only a failure before any answer is retried: after it, tokens may be out.
                retry = not answered and isinstance(exc, _RETRY_TRANSPORT)
                if not retry or attempt >= self._settings.max_retries:
                    raise error from exc
            if not retry or attempt >= self._settings.max_retries:
                raise error
            delay = self._backoff(attempt, wait)
            if trio.current_time() + delay >= deadline:
                raise error  # a wait past the deadline (first token, or whole reply) is pointless
            await trio.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Jittered, so that streams refused together do not all come back together."""
        base = self._settings.retry_backoff_s
        if retry_after is not None:
            # Never sooner than the server asked; spread over one base backoff after that.
            return retry_after + self._random.uniform(0, base)
        return self._random.uniform(0, base * 2**attempt)  # "full jitter"

    async def _status_error(self, response: httpx.Response, deadline: float) -> DownstreamError:
        body = b""
        with trio.move_on_at(deadline):
            body = await response.aread()
        return DownstreamError(
            response.status_code,
            _provider_message(body, response.status_code),
            retry_after_s=_retry_after(response),
        )

    async def _read_stream(
        self, response: httpx.Response, emit: Emit, first_token: trio.CancelScope
    ) -> ProviderOutcome:
        idle = self._settings.idle_timeout_s
        async with contextlib.aclosing(
            cast(AsyncGenerator[bytes, None], response.aiter_bytes())
        ) as pieces:
            # One scope for the whole reply, its deadline pushed on as pieces arrive: cheaper
            # than a scope per piece (httpx yields one piece per HTTP chunk, often per token).
            with trio.CancelScope() as stalled:
                return await self._consume(pieces, emit, first_token, stalled)
        raise ProviderTimeoutError(
            f"the provider stalled: nothing for {idle:g}s mid-reply ({self._where})"
        )

    async def _consume(
        self,
        pieces: AsyncGenerator[bytes, None],
        emit: Emit,
        first_token: trio.CancelScope,
        stalled: trio.CancelScope,
    ) -> ProviderOutcome:
        decoder = SSEDecoder(max_event_bytes=self._settings.max_event_bytes)
        usage = Usage()
        finish_reason = "stop"
        waiting_first = True  # until then, the first-token scope times the wait
        tool_calls = ToolCalls()
        idle = self._settings.idle_timeout_s
        # The stall deadline is pushed on lazily: to last-piece + idle + slack at most once per
        # slack, rather than on every piece (re-arming a trio deadline per token cost about a
        # tenth of this loop). A stall is so reported between idle and idle + slack after the
        # last piece, never before.
        slack = idle / _STALL_SLACK_DIVISOR
        rearm_at = -math.inf
        # A high surrogate that ended a delta, kept for the low one that begins the next: an
        # upstream that splits a character outside the BMP (an emoji) over two deltas sends
        # two lone surrogates, which no UTF-8 writer can encode; joined, they are one character.
        held = ""
        clock = (
            trio.lowlevel.current_clock()
        )  # its method per piece: half trio.current_time()'s cost
        while True:
            if not waiting_first:
                now = clock.current_time()
                if now >= rearm_at:
                    stalled.deadline = now + idle + slack
                    rearm_at = now + slack
            piece = await anext(pieces, None)
            try:
                events = decoder.feed(piece) if piece is not None else decoder.close()
            except SSELimitError as exc:
                raise ProviderProtocolError(f"{exc} ({self._where})") from None
            tokens: list[str] = []
            done = False
            for event in events:
                if event.data == "[DONE]":
                    done = True
                    break
                chunk = self._parse(event.data)
                if "error" in chunk:
                    raise _in_stream_error(chunk["error"])
                choices = chunk.get("choices") or []
                if not isinstance(choices, list):
                    raise ProviderProtocolError(
                        f"malformed chunk from the provider: choices is not a list: {event.data[:200]}"
                    )
                for choice in choices:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content:
                        if held:
                            content = _joined_surrogates(held + content)
                            held = ""
                        if "\ud800" <= content[-1] <= "\udbff":
                            held, content = content[-1], content[:-1]
                        if content:
                            tokens.append(content)
                    elif content is not None and not isinstance(content, str):
                        raise ProviderProtocolError(
                            f"malformed chunk from the provider: content is not text: {event.data[:200]}"
                        )
                    if isinstance(delta, dict) and delta.get("tool_calls") is not None:
                        tool_calls.feed(delta["tool_calls"])
                        if waiting_first:
                            # A reply that calls a tool may send no text at all: its first
                            # piece is the first sign of life, and the idle timer takes over.
                            waiting_first = False
                            first_token.deadline = math.inf
                    if isinstance(choice.get("finish_reason"), str):
                        finish_reason = choice["finish_reason"]
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
            if held and (done or piece is None):
                tokens.append(_joined_surrogates(held))  # half a character: U+FFFD
                held = ""
            if tokens:
                if waiting_first:
                    waiting_first = False
                    first_token.deadline = math.inf
                if not emit.offer(tokens):
                    # Waiting on the pipeline (backpressure) is not the provider stalling.
                    stalled.deadline = math.inf
                    await emit(tokens)
                    rearm_at = -math.inf
            if done:
                # The reply is whole: nothing the body does next may lose it. Its end is read
                # briefly, so a whole response returns its connection to the pool; one that
                # does not end is left, and closed with the response, without an error.
                first_token.deadline = stalled.deadline = math.inf
                with trio.move_on_after(min(idle, _DRAIN_AFTER_DONE_S)):
                    await self._drain(pieces)
            if done or piece is None:
                # Servers that end without [DONE] end the reply too.
                return ProviderOutcome(
                    finish_reason=finish_reason, usage=usage, tool_calls=tool_calls.result()
                )

    @staticmethod
    async def _drain(pieces: AsyncGenerator[bytes, None]) -> None:
        try:
            async for _ in pieces:
                pass
        except httpx.HTTPError:
            pass  # a body that breaks after [DONE] takes nothing from the reply

    def _parse(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderProtocolError(
                f"malformed chunk from the provider (not JSON): {data[:200]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise ProviderProtocolError(
                f"malformed chunk from the provider (not an object): {data[:200]!r}"
            )
        return chunk

    async def _read_whole(self, response: httpx.Response) -> Completion:
        body = await response.aread()
        reply = self._parse(body.decode("utf-8", errors="replace"))
        if "error" in reply:
            raise _in_stream_error(reply["error"])
        try:
            choice = reply["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderProtocolError(
                f"malformed reply from the provider: {body[:200]!r}"
            ) from None
        if not isinstance(content, str):
            raise ProviderProtocolError(
                f"malformed reply from the provider: content is not text: {body[:200]!r}"
            )
        calls = ToolCalls()
        raw_calls = choice["message"].get("tool_calls")
        if raw_calls is not None:
            # A whole reply's calls are whole already: the same checks, and the same shape.
            if isinstance(raw_calls, list):
                raw_calls = [
                    {"index": i, **c} if isinstance(c, dict) else c for i, c in enumerate(raw_calls)
                ]
            calls.feed(raw_calls)
        return Completion(
            text=content,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            usage=_usage(reply.get("usage")),
            tool_calls=calls.result(),
        )
