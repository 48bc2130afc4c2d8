"""``engine: huggingface_pipeline``: a local transformers text-generation pipeline, streamed.

Generation runs in a worker thread; its tokens reach the trio pipeline through a streamer
(:class:`AsyncTextIteratorStreamer`, usable as NeMo Guardrails' seeds show). Each call has its
own streamer, cancel flag and channel, so concurrent calls (from threads, or several streams
in one trio loop) share only the model, which inference does not change. The thread waits
while the pipeline is full (backpressure), and a stopping criterion watching the cancel flag
ends generation within one token of a block or a consumer's close, even while the model
writes tokens that flush no text; the trio side waits for the thread to return, so none is
left behind. Needs the ``hf`` extra (transformers, torch), imported only when this engine is
used.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

import trio

from .._errors import GenerationError
from .._messages import Usage
from ._base import (
    ChatMessage,
    ChatRequest,
    CollectTokens,
    Completion,
    Emit,
    ProviderOutcome,
)

__all__ = ["AsyncTextIteratorStreamer", "HuggingFacePipelineCompatible", "huggingface_provider"]

# Keys of a config's ``parameters`` that choose where the model is loaded, as transformers'
# pipeline() takes them; every other key is a generation parameter.
LOAD_PARAMETERS = ("device", "device_map")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise GenerationError(
            "engine huggingface_pipeline needs transformers and torch: pip install 'railstream[hf]'"
        ) from exc
    return transformers


class _StreamerMixin:
    """What railstream adds to transformers' TextStreamer: a trio hand-off and token counts."""

    skip_prompt: bool
    next_tokens_are_prompt: bool
    decode_kwargs: dict[str, Any]
    tokenizer: Any
    _send: trio.MemorySendChannel[str] | None
    _token: trio.lowlevel.TrioToken | None
    prompt_tokens: int | None
    generated_tokens: int

    def put(self, value: Any) -> None:
        # Called from the generation thread with the prompt's token ids first, then each
        # step's: the counts of the call, known even when it is cut off.
        count = int(value.numel()) if hasattr(value, "numel") else len(value)
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.prompt_tokens = count
        else:
            self.generated_tokens += count
        super().put(value)  # type: ignore[misc]

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text and self._send is not None and self._token is not None:
            # Waits while the pipeline is full; raises if the stream is gone, which ends
            # generation. Steps that flush no text never come here: for them the stopping
            # criterion is the only way a cancel reaches the model.
            trio.from_thread.run(self._send.send, text, trio_token=self._token)


@functools.cache
def _streamer_class() -> type:
    return type("AsyncTextIteratorStreamer", (_StreamerMixin, _transformers().TextStreamer), {})


def AsyncTextIteratorStreamer(
    tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any
) -> Any:
    """A streamer for a transformers pipeline, as in NeMo Guardrails' seeds::

        streamer = AsyncTextIteratorStreamer(tokenizer, skip_prompt=True)
        params = {"max_new_tokens": 100, "streamer": streamer}
        pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, **params)
        llm = HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=params)

    Given to :class:`HuggingFacePipelineCompatible`, it is a template: each call streams
    through its own copy (same tokenizer and decoding), so concurrent calls never mix.
    Unlike NeMo's, it ends when generation ends, or fails.
    """
    # As the pipeline's own output does: special tokens (end of text, unknown) are not text.
    decode_kwargs.setdefault("skip_special_tokens", True)
    streamer = _streamer_class()(tokenizer, skip_prompt=skip_prompt, **decode_kwargs)
    streamer._send, streamer._token = None, None
    streamer.prompt_tokens, streamer.generated_tokens = None, 0
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
        template = kwargs.pop("streamer", None)
        if template is not None and not isinstance(template, _StreamerMixin):
            raise ValueError(
                "streamer must be railstream's AsyncTextIteratorStreamer (or none): "
                "each call streams through its own copy of it"
            )
        if template is not None and not template.skip_prompt:
            raise ValueError(
                "a streamer with skip_prompt=False would stream the prompt back: "
                "railstream streams only the reply"
            )
        self._tokenizer = template.tokenizer if template is not None else pipeline.tokenizer
        self._decode_kwargs = dict(template.decode_kwargs) if template is not None else {}
        # Your own stopping criteria run beside railstream's cancel flag, never instead of it.
        self._stopping_criteria = list(kwargs.pop("stopping_criteria", None) or [])
        if kwargs.pop("return_full_text", False):
            raise ValueError(
                "return_full_text=True would stream the prompt back: railstream streams only the reply"
            )
        self._kwargs = kwargs
        # Of the last call cancelled / the last to return (calls may overlap): what tests and
        # diagnostics compare to see that generation stopped within a token of the cancel.
        self.cancelled_at: int | None = None  # generated tokens when the cancel came
        self.finished_at: int | None = None  # generated tokens when the thread returned

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

    def _streamer(self, send: trio.MemorySendChannel[str]) -> Any:
        # One per call: a streamer holds the call's undecoded tokens, its counts and where its
        # text goes, so a shared one would hand one call's tokens to another.
        streamer = AsyncTextIteratorStreamer(
            self._tokenizer, skip_prompt=True, **self._decode_kwargs
        )
        streamer._send, streamer._token = send, trio.lowlevel.current_trio_token()
        return streamer

    async def stream(self, request: ChatRequest, emit: Emit) -> ProviderOutcome:
        prompt = _prompt(self.pipeline.tokenizer, request.messages)
        send, receive = trio.open_memory_channel[str](8)
        streamer = self._streamer(send)
        token = streamer._token
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
                trio.from_thread.run_sync(send.close, trio_token=token)

        async def run_generation() -> None:
            # abandon_on_cancel=False: a cancelled stream still waits for the thread, which
            # the cancel flag stops within one token: no thread outlives the stream.
            await trio.to_thread.run_sync(generate, abandon_on_cancel=False)

        try:
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
                        # A block, a consumer that left, an error: stop the model now (the
                        # thread sees the flag at its next token), before waiting for it.
                        cancel.set()
                        self.cancelled_at = streamer.generated_tokens
        finally:
            # The thread has returned, so the counts are final; a cancelled call returns no
            # outcome, and its record takes them from this report.
            self.finished_at = streamer.generated_tokens
            usage = _usage(streamer)
            emit.report_usage(usage)
        if failure and not isinstance(failure[0], trio.BrokenResourceError | trio.Cancelled):
            raise GenerationError(f"the pipeline failed: {type(failure[0]).__name__}: {failure[0]}")
        return ProviderOutcome(usage=usage)

    async def complete(self, request: ChatRequest) -> Completion:
        collect = CollectTokens()
        outcome = await self.stream(request, collect)
        return Completion(text="".join(collect.tokens), usage=outcome.usage)


def _usage(streamer: Any) -> Usage:
    # The prompt is counted when the model takes it; a call that failed before that has no
    # prompt count, and so no total.
    prompt: int | None = streamer.prompt_tokens
    completion: int = streamer.generated_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=None if prompt is None else prompt + completion,
    )


def huggingface_provider(
    model: str, parameters: Mapping[str, Any]
) -> HuggingFacePipelineCompatible:
    """``engine: huggingface_pipeline`` from a config: ``model`` is a local model path.

    ``device`` or ``device_map`` in ``parameters`` say where the model is loaded, as for
    transformers' ``pipeline()``; a device that cannot be used fails here, at load.
    """
    transformers = _transformers()
    placement = {k: parameters[k] for k in LOAD_PARAMETERS if k in parameters}
    generation = {k: v for k, v in parameters.items() if k not in LOAD_PARAMETERS}
    where = ", ".join(f"{k}={v!r}" for k, v in placement.items()) or "the default device"
    try:
        pipe = transformers.pipeline("text-generation", model=model, tokenizer=model, **placement)
    except Exception as exc:
        raise GenerationError(
            f"engine huggingface_pipeline could not load {model!r} on {where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    device = placement.get("device")
    if isinstance(device, int) and device >= 0 and pipe.device.type == "cpu":
        # transformers falls back to the CPU for an accelerator index it cannot find: a model
        # far slower than the config asks for, without a word.
        raise GenerationError(
            f"engine huggingface_pipeline could not load {model!r} on device={device}: "
            "torch finds no accelerator; set device: cpu (or -1) to run on the CPU"
        )
    return HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=generation)
