"""``engine: huggingface_pipeline``: a local transformers text-generation pipeline, streamed.

Generation runs in a worker thread; its tokens reach the trio pipeline through a streamer
(:class:`AsyncTextIteratorStreamer`, usable as NeMo Guardrails' seeds show). The thread waits
while the pipeline is full (backpressure), and a stopping criterion watching a cancel flag
ends generation within one token of a block or a consumer's close; the trio side waits for
the thread to return, so none is left behind. Needs the ``hf`` extra (transformers, torch),
imported only when this engine is used.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import trio

from engine.errors import GenerationError
from engine.messages import Usage

from .base import ChatMessage, ChatRequest, CollectTokens, Completion, Emit, ProviderOutcome

__all__ = ["AsyncTextIteratorStreamer", "HuggingFacePipelineCompatible", "huggingface_provider"]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise GenerationError(
            "engine huggingface_pipeline needs transformers and torch: pip install 'railstream[hf]'"
        ) from exc
    return transformers


def _streamer_base() -> type:
    return _transformers().TextStreamer  # type: ignore[no-any-return]


class _StreamerMixin:
    """What railstream adds to transformers' TextStreamer: a trio hand-off and a token count."""

    _send: trio.MemorySendChannel[str] | None
    _token: trio.lowlevel.TrioToken | None
    generated_tokens: int

    def _bind(self, send: trio.MemorySendChannel[str], token: trio.lowlevel.TrioToken) -> None:
        self._send, self._token, self.generated_tokens = send, token, 0

    def put(self, value: Any) -> None:
        # Called from the generation thread with each step's token ids (the prompt first,
        # which TextStreamer skips with skip_prompt).
        prompt = getattr(self, "skip_prompt", False) and getattr(
            self, "next_tokens_are_prompt", False
        )
        if not prompt:
            self.generated_tokens += int(value.numel()) if hasattr(value, "numel") else len(value)
        super().put(value)  # type: ignore[misc]

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text and self._send is not None and self._token is not None:
            # Waits while the pipeline is full; raises if the stream is gone, which ends
            # generation (with the stopping criterion as the usual, quieter way).
            trio.from_thread.run(self._send.send, text, trio_token=self._token)


def AsyncTextIteratorStreamer(
    tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any
) -> Any:
    """A streamer for a transformers pipeline, as in NeMo Guardrails' seeds::

        streamer = AsyncTextIteratorStreamer(tokenizer, skip_prompt=True)
        params = {"max_new_tokens": 100, "streamer": streamer}
        pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, **params)
        llm = HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=params)

    Unlike NeMo's, it ends when generation ends, or fails.
    """
    cls = type("AsyncTextIteratorStreamer", (_StreamerMixin, _streamer_base()), {})
    # As the pipeline's own output does: special tokens (end of text, unknown) are not text.
    decode_kwargs.setdefault("skip_special_tokens", True)
    streamer = cls(tokenizer, skip_prompt=skip_prompt, **decode_kwargs)
    streamer._send, streamer._token, streamer.generated_tokens = None, None, 0
    return streamer


def _prompt(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        )
    lines = [f"{m['role']}: {m.get('content') or ''}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class HuggingFacePipelineCompatible:
    """A transformers ``text-generation`` pipeline as a railstream model (``LLMRails(config, llm=...)``)."""

    def __init__(self, pipeline: Any, model_kwargs: Mapping[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        kwargs = dict(model_kwargs or {})
        self._streamer = kwargs.pop("streamer", None)
        # Your own stopping criteria run beside railstream's cancel flag, never instead of it.
        self._stopping_criteria = list(kwargs.pop("stopping_criteria", None) or [])
        if kwargs.pop("return_full_text", False):
            raise ValueError(
                "return_full_text=True would stream the prompt back: railstream streams only the reply"
            )
        self._kwargs = kwargs
        # One generation at a time: the model (and a shared streamer) serve one call.
        self._lock = trio.Lock()
        self.cancelled_at: int | None = None  # generated tokens when the last cancel came
        self.finished_at: int | None = None  # generated tokens when the last thread returned

    @property
    def provider_name(self) -> str:
        return "huggingface_pipeline"

    @property
    def model_name(self) -> str | None:
        model = getattr(self.pipeline, "model", None)
        name = getattr(getattr(model, "config", None), "name_or_path", None)
        return str(name) if name else None

    def _stopping(self, cancel: threading.Event) -> Any:
        transformers = _transformers()

        class StopOnCancel(transformers.StoppingCriteria):  # type: ignore[misc, name-defined]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        return transformers.StoppingCriteriaList([*self._stopping_criteria, StopOnCancel()])

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        async with self._lock:
            return await self._stream(request, emit)

    async def _stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        tokenizer = self.pipeline.tokenizer
        prompt = _prompt(tokenizer, request.messages)
        streamer = self._streamer or AsyncTextIteratorStreamer(tokenizer, skip_prompt=True)
        send, receive = trio.open_memory_channel[str](8)
        streamer._bind(send, trio.lowlevel.current_trio_token())
        cancel = threading.Event()
        kwargs = {**self._kwargs, **request.parameters}
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                self.pipeline(
                    prompt,
                    streamer=streamer,
                    stopping_criteria=self._stopping(cancel),
                    return_full_text=False,
                    **kwargs,
                )
            except BaseException as exc:  # reported in trio; the thread must simply end
                failure.append(exc)
            finally:
                self.finished_at = streamer.generated_tokens
                trio.from_thread.run_sync(send.close, trio_token=streamer._token)

        async def run_generation() -> None:
            # abandon_on_cancel=False: a cancelled stream still waits for the thread, which
            # the cancel flag stops within one token: no thread outlives the stream.
            await trio.to_thread.run_sync(generate, abandon_on_cancel=False)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_generation)
            ended = False
            try:
                with receive:
                    async for text in receive:
                        await emit((text,))
                ended = True
            finally:
                if not ended:
                    # A block, a consumer that left, an error: stop the model now (the thread
                    # sees the flag at its next token), before waiting for it to return.
                    cancel.set()
                    self.cancelled_at = streamer.generated_tokens
        if failure and not isinstance(failure[0], trio.BrokenResourceError | trio.Cancelled):
            raise GenerationError(f"the pipeline failed: {type(failure[0]).__name__}: {failure[0]}")
        prompt_tokens = len(tokenizer(prompt)["input_ids"])
        completion = streamer.generated_tokens
        return ProviderOutcome(
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion,
                total_tokens=prompt_tokens + completion,
            )
        )

    async def complete(self, request: ChatRequest) -> Completion:
        collect = CollectTokens()
        outcome = await self.stream(request, collect)
        return Completion(text="".join(collect.tokens), usage=outcome.usage)


def huggingface_provider(
    model: str, parameters: Mapping[str, Any]
) -> HuggingFacePipelineCompatible:
    """``engine: huggingface_pipeline`` from a config: ``model`` is a local model path."""
    transformers = _transformers()
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=model, device="cpu")
    return HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=parameters)
