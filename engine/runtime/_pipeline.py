"""The pipeline: input rails on the user's message, then four stages in one nursery, joined
by bounded channels.

    user message ─▶ input rails ─(block)─▶ refusal ─────────────────────────▶ consumer
                        │ pass (speculative_generation: the generation stage starts at once,
                        ▼  the others only when the input rails pass; a block cancels it)

    ┌────────────┐ GenerationEvent ┌───────────┐ BufferEvent ┌───────┐ OutputEvent
    │ generation │──────(16)──────▶│ buffering │─────(4)────▶│ rails │─────(1)─────▶ consumer
    └────────────┘                 └───────────┘             └───────┘   (stream_async)
          │ LLMCall                                              │ LLMCall, RailRun
          └──────────────────────────(16)─────▶ ┌───────┐ ◀──────┘
                                                 │ usage │ ─▶ UsageLedger ─▶ stream.log
                                                 └───────┘

Every channel is bounded (capacities in brackets), so a consumer that stops reading makes the
model pause after a small, fixed lookahead. When the rails stage ends, by a block or the end
of the reply, or when the consumer goes away, generation is cancelled at once (a provider's
HTTP stream closes); the usage stage outlives the others so that cancelled calls are
recorded too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import attrs
import trio

from railstream.stages import (
    BufferEvent,
    GenerationEvent,
    LogRecord,
    OutputEvent,
    Released,
    StreamFailed,
    TrioUserCode,
    UsageLedger,
    UserCode,
    Window,
    WindowBuffer,
    run_buffering,
    run_usage,
)
from railstream.stages.generation import ChatProvider, ChatRequest, run_generation
from railstream.stages.rails import Rail, RailContext, WindowEvaluator, run_rails

__all__ = ["BLOCKED_REPLY", "CHANNEL_CAPACITY", "Pipeline", "PipelinePlan", "PipelineStatistics"]

# NeMo Guardrails' answer in place of a blocked reply (or a blocked user message).
BLOCKED_REPLY = "I'm sorry, I can't respond to that."

# Small on purpose: each one bounds how far generation may run ahead of the consumer. The
# token channel holds 16 batches, not 4: under load (a model faster than the pipeline), a
# provider hands on one batch per network event, and each full channel costs the generation
# task a trip through the scheduler; at 500 concurrent unpaced streams 16 cut the CPU per
# token by 13-15% against 4 (python -m benchmarks' client, two interleaved runs each).
CHANNEL_CAPACITY = {"tokens": 16, "windows": 4, "output": 1, "usage": 16}


@attrs.frozen(kw_only=True)
class PipelinePlan:
    """Everything one stream needs: the call, the rails, the window geometry."""

    provider: ChatProvider
    request: ChatRequest
    rails: Sequence[Rail] = ()
    parallel: bool = False
    rail_timeout_s: float | None = None
    rail_timeouts_s: Mapping[str, float] = attrs.field(factory=dict)
    # None: one window holding the whole reply (non-streaming generate).
    chunk_size: int | None = 200
    context_size: int = 0
    stream_first: bool = True
    max_concurrent_checks: int = 1
    user_message: str = ""
    # The conversation before user_message (user and assistant turns).
    history: Sequence[Mapping[str, Any]] = ()
    # NeMo's context variables (from context messages), for the actions.
    context_vars: Mapping[str, Any] = attrs.field(factory=dict)
    # Run once on user_message before the model is asked; a block answers with ``refusal``.
    input_rails: Sequence[Rail] = ()
    input_parallel: bool = False
    input_rail_timeout_s: float | None = None
    input_rail_timeouts_s: Mapping[str, float] = attrs.field(factory=dict)
    refusal: str = BLOCKED_REPLY
    # Ask the model while the input rails run; nothing it says is read until they pass.
    speculative_generation: bool = False
    config: Any = None
    # Where the application's actions and generator run (its event loop, worker threads).
    host: UserCode = attrs.field(factory=TrioUserCode)
    # Called once the stream is over, with every call and rail run recorded (the facade's log).
    on_finished: Callable[[UsageLedger], None] | None = None


@attrs.frozen(kw_only=True)
class PipelineStatistics:
    """How full each channel is now: where a stream is waiting (backpressure made visible)."""

    tokens: trio.MemoryChannelStatistics
    windows: trio.MemoryChannelStatistics
    output: trio.MemoryChannelStatistics
    usage: trio.MemoryChannelStatistics


class Pipeline:
    """One stream's stages. Read :attr:`output` while :meth:`run` runs in a nursery."""

    def __init__(self, plan: PipelinePlan) -> None:
        self.plan = plan
        self.ledger = UsageLedger()
        self._tokens = trio.open_memory_channel[GenerationEvent](CHANNEL_CAPACITY["tokens"])
        self._windows = trio.open_memory_channel[BufferEvent](CHANNEL_CAPACITY["windows"])
        self._output = trio.open_memory_channel[OutputEvent](CHANNEL_CAPACITY["output"])
        self._usage = trio.open_memory_channel[LogRecord](CHANNEL_CAPACITY["usage"])
        # Covers generation, buffering and rails; not usage, which must record the cancelled.
        self._stages_scope = trio.CancelScope()

    @property
    def output(self) -> trio.MemoryReceiveChannel[OutputEvent]:
        return self._output[1]

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(
            tokens=self._tokens[0].statistics(),
            windows=self._windows[0].statistics(),
            output=self._output[0].statistics(),
            usage=self._usage[0].statistics(),
        )

    def cancel(self) -> None:
        """Stop generating and checking now; the usage records still arrive. Idempotent."""
        self._stages_scope.cancel()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            # Every record is in the ledger now, the cancelled calls' too.
            if self.plan.on_finished is not None:
                self.plan.on_finished(self.ledger)

    async def _run(self) -> None:
        plan = self.plan
        tokens_send, tokens_recv = self._tokens
        windows_send, windows_recv = self._windows
        output_send = self._output[0]
        usage_send, usage_recv = self._usage
        has_rails = bool(plan.rails)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_usage, usage_recv, self.ledger)
            # The usage stage ends when both of these are closed (by their stages).
            generation_usage, rails_usage = usage_send, usage_send.clone()
            with self._stages_scope, output_send, generation_usage, rails_usage:
                context = RailContext(
                    user_message=plan.user_message,
                    history=tuple(plan.history),
                    variables=plan.context_vars,
                    config=plan.config,
                    record=rails_usage.send,
                    host=plan.host,
                )
                speculate = bool(plan.input_rails) and plan.speculative_generation
                checked_first = plan.input_rails and not speculate
                if checked_first and not await self._input_passes(context, output_send):
                    return  # blocked: the model is never asked
                evaluator = None
                if has_rails:
                    evaluator = WindowEvaluator(
                        plan.rails,
                        parallel=plan.parallel,
                        timeout=plan.rail_timeout_s,
                        timeouts=plan.rail_timeouts_s,
                        context=context,
                    )
                buffer = None
                if has_rails:
                    size = plan.chunk_size if plan.chunk_size is not None else _WHOLE_REPLY
                    buffer = WindowBuffer(
                        size, plan.context_size if plan.chunk_size is not None else 0
                    )
                async with trio.open_nursery() as stages:
                    stages.start_soon(
                        run_generation, plan.provider, plan.request, tokens_send, generation_usage
                    )
                    if speculate and not await self._input_passes(context, output_send):
                        # Blocked while the model was already generating: nothing of it was
                        # read past the token channel, and the cancel closes its stream now.
                        stages.cancel_scope.cancel()
                        return
                    # Speculating, generation ran ahead only as far as the token channel holds;
                    # what it made is buffered and checked from here, as if it had just come.
                    stages.start_soon(
                        partial(
                            run_buffering,
                            tokens_recv,
                            windows_send,
                            buffer=buffer,
                            stream_first=plan.stream_first or not has_rails,
                        )
                    )
                    # The rails stage runs in this task, the nursery's own: a task of its
                    # own here would only wait for the stages to end.
                    await self._run_last_stage(windows_recv, output_send, evaluator, stages)

    async def _input_passes(
        self, context: RailContext, outbox: trio.MemorySendChannel[OutputEvent]
    ) -> bool:
        """Run the input rails on the user's message; on a block, send the refusal and the
        block (a rail that failed closed: its error) and answer False."""
        plan = self.plan
        evaluator = WindowEvaluator(
            plan.input_rails,
            parallel=plan.input_parallel,
            timeout=plan.input_rail_timeout_s,
            timeouts=plan.input_rail_timeouts_s,
            context=context,
            side="input",
        )
        message = Window.of((plan.user_message,))
        verdict = await evaluator.evaluate(message)
        if verdict.error is None:
            return True
        try:
            if verdict.error.type == "guardrails_violation":
                await outbox.send(Released(plan.refusal))  # NeMo's answer to a blocked input
            await outbox.send(StreamFailed(verdict.error, "content_filter"))
        except trio.BrokenResourceError:
            pass  # the consumer closed its end: it wants nothing more
        return False

    async def _run_last_stage(
        self,
        inbox: trio.MemoryReceiveChannel[BufferEvent],
        outbox: trio.MemorySendChannel[OutputEvent],
        evaluator: WindowEvaluator | None,
        stages: trio.Nursery,
    ) -> None:
        plan = self.plan
        try:
            await run_rails(
                inbox,
                outbox,
                evaluator=evaluator,
                stream_first=plan.stream_first or evaluator is None,
                context_size=plan.context_size if plan.chunk_size is not None else 0,
                max_concurrent_checks=plan.max_concurrent_checks,
            )
        except trio.BrokenResourceError:
            pass  # the consumer closed its end: it wants nothing more
        # The stream is over (ended, blocked, or abandoned): nothing upstream may keep running.
        stages.cancel_scope.cancel()


# A window larger than any reply: the whole reply is checked at once.
_WHOLE_REPLY = 2**62
