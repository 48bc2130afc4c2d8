"""``LLMRails(config, llm=<a LangChain chat model>)``: NeMo's usual way to pass a model.

LangChain's models are asyncio code. Called from asyncio (the application's loop is the
``host``), the model's ``astream`` runs there, step by step. Called from trio, there is no
asyncio loop to run it on: its ``stream`` (sync) runs in a worker thread, one chunk per hop.
Either way, a block or a consumer that leaves closes the model's stream at once (its
``aclose()`` / ``close()``: its HTTP response with it). Usage comes from the chunks'
``usage_metadata`` when the model reports it (``ChatOpenAI(stream_usage=True)``), else it is
unknown (None), never made up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import trio

from .._errors import GenerationError
from .._messages import Usage
from .._usercode import CLEANUP_GRACE_S, TrioUserCode, UserCode
from ._base import ChatRequest, Completion, Emit, ProviderOutcome

__all__ = ["LangChainProvider", "is_langchain_chat_model"]


def is_langchain_chat_model(value: object) -> bool:
    """A LangChain chat model (only if langchain-core is installed: nothing is imported else)."""
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:
        return False
    return isinstance(value, BaseChatModel)


class LangChainProvider:
    """A LangChain chat model as railstream's provider (see the module docstring)."""

    def __init__(self, model: Any, host: UserCode | None = None) -> None:
        self._model = model
        self._host = host or TrioUserCode()

    @property
    def _on_trio(self) -> bool:
        # A trio caller (not an asyncio application's loop, whose host subclasses trio's).
        return type(self._host) is TrioUserCode

    def on(self, host: UserCode) -> LangChainProvider:
        """The same model, for one call made from ``host`` (asyncio or trio)."""
        return LangChainProvider(self._model, host)

    @property
    def provider_name(self) -> str:
        return f"langchain:{type(self._model).__name__}"

    @property
    def model_name(self) -> str | None:
        name = getattr(self._model, "model_name", None) or getattr(self._model, "model", None)
        return name if isinstance(name, str) else None

    def _arguments(self, request: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        messages = [dict(m) for m in request.messages]
        return messages, dict(request.parameters)

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        messages, kwargs = self._arguments(request)
        summary = _Summary()
        if self._on_trio:
            await self._stream_in_thread(messages, kwargs, emit, summary)
        else:
            await self._stream_on_loop(messages, kwargs, emit, summary)
        return ProviderOutcome(finish_reason=summary.finish_reason or "stop", usage=summary.usage())

    async def _stream_on_loop(
        self, messages: list[dict[str, Any]], kwargs: dict[str, Any], emit: Emit, summary: _Summary
    ) -> None:
        host = self._host
        iterator = self._model.astream(messages, **kwargs)
        try:
            while True:
                try:
                    chunk = await host.run_async(iterator.__anext__)
                except StopAsyncIteration:
                    break
                text = summary.add(chunk)
                if text:
                    await emit((text,))
        except GenerationError:
            raise
        except Exception as exc:
            raise GenerationError(
                f"the LangChain model failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                await host.run_async(iterator.aclose)

    async def _stream_in_thread(
        self, messages: list[dict[str, Any]], kwargs: dict[str, Any], emit: Emit, summary: _Summary
    ) -> None:
        iterator: Iterator[Any] = self._model.stream(messages, **kwargs)
        end = object()
        try:
            while True:
                try:
                    chunk = await trio.to_thread.run_sync(
                        next, iterator, end, abandon_on_cancel=True
                    )
                except Exception as exc:
                    raise GenerationError(
                        f"the LangChain model failed: {type(exc).__name__}: {exc}"
                    ) from exc
                if chunk is end:
                    break
                text = summary.add(chunk)
                if text:
                    await emit((text,))
        finally:
            # Closing the generator closes the model's HTTP response; a thread still in next()
            # (abandoned at a cancel) finishes its read first, within the grace.
            close = getattr(iterator, "close", None)
            if close is not None:
                with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                    await trio.to_thread.run_sync(_close_quietly, close, abandon_on_cancel=True)

    async def complete(self, request: ChatRequest) -> Completion:
        messages, kwargs = self._arguments(request)
        try:
            if self._on_trio:
                message = await trio.to_thread.run_sync(
                    lambda: self._model.invoke(messages, **kwargs), abandon_on_cancel=True
                )
            else:
                message = await self._host.run_async(
                    lambda: self._model.ainvoke(messages, **kwargs)
                )
        except Exception as exc:
            raise GenerationError(
                f"the LangChain model failed: {type(exc).__name__}: {exc}"
            ) from exc
        summary = _Summary()
        text = summary.add(message)
        return Completion(
            text=text, usage=summary.usage(), finish_reason=summary.finish_reason or "stop"
        )


def _close_quietly(close: Any) -> None:
    try:
        close()
    except (ValueError, RuntimeError):
        pass  # "generator already executing": the abandoned thread is in it; it ends by itself


class _Summary:
    """What the chunks said beyond their text: usage, finish reason."""

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.total_tokens: int | None = None
        self.finish_reason: str | None = None

    def add(self, chunk: Any) -> str:
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            # LangChain reports usage once (the last chunk) or in parts that add up.
            self.input_tokens = (self.input_tokens or 0) + int(usage.get("input_tokens", 0))
            self.output_tokens = (self.output_tokens or 0) + int(usage.get("output_tokens", 0))
            self.total_tokens = (self.total_tokens or 0) + int(usage.get("total_tokens", 0))
        metadata = getattr(chunk, "response_metadata", None) or {}
        finish = metadata.get("finish_reason") if isinstance(metadata, dict) else None
        if isinstance(finish, str):
            self.finish_reason = finish
        content = getattr(chunk, "content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # content blocks: their text parts
            return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        raise GenerationError(f"the LangChain model sent content of type {type(content).__name__}")

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.input_tokens,
            completion_tokens=self.output_tokens,
            total_tokens=self.total_tokens,
        )
