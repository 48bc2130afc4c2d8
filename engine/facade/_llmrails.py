"""``LLMRails``: the facade users hold. It checks each call, has the runtime plan it, and runs
the pipeline (from trio, or from asyncio through the bridge)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import attrs
import sniffio
import trio

from railstream.config_schema import RailsConfig, action_name_of
from railstream.runtime import BLOCKED_REPLY, Pipeline, PipelinePlan, PlanBuilder, Side
from railstream.stages import (
    GenerationError,
    Released,
    StreamEnded,
    StreamFailed,
    StreamingNotSupportedError,
    TrioUserCode,
    UsageLedger,
    UserCode,
)
from railstream.stages.generation import ChatProvider
from railstream.stages.rails import Action, Rail

from ._asyncio_bridge import AsyncioBridge, AsyncioUserCode, in_asyncio
from ._generation_log import (
    ExplainInfo,
    GenerationLog,
    GenerationOptions,
    GenerationResponse,
    parse_options,
)
from ._rails_stream import RailsStream
from ._request import checked_conversation
from ._streaming_handler import StreamingHandler
from ._tracing import Tracer, tracing_available

__all__ = ["BLOCKED_REPLY", "INTERNAL_ERROR_REPLY", "LLMRails"]

INTERNAL_ERROR_REPLY = "I'm sorry, an internal error has occurred."


class LLMRails:
    """Guarded generation for one configuration::

    rails = LLMRails(RailsConfig.from_path("examples/demo"))
    async for chunk in rails.stream_async(messages=[{"role": "user", "content": "Hi"}]):
        print(chunk, end="")
    """

    def __init__(
        self,
        config: RailsConfig,
        llm: ChatProvider | None = None,
        verbose: bool = False,
        *,
        tracer_provider: Any = None,
    ) -> None:
        """``llm``: a model of your own to use as ``main`` (see ``railstream.stages.generation.ChatProvider``).

        ``tracer_provider``: where the OpenTelemetry spans of each call go (the global
        provider if None; with no provider configured, or without opentelemetry-api, none are
        made; see ``railstream.facade._tracing``).

        ``verbose``: as NeMo's, each call's LLM calls and rail runs are logged as it ends
        (logger ``railstream.calls``, DEBUG, to stderr unless the application set up the
        ``railstream`` logger).
        """
        self.config = config
        self.verbose = verbose
        if verbose:
            _log_to_stderr()
        self._last_ledger: UsageLedger | None = None
        self._observers: list[Callable[[UsageLedger], None]] = []
        # NeMo's tracing.enabled: false turns this config's spans off.
        traced = config.tracing is None or config.tracing.enabled
        self._tracer = Tracer(tracer_provider) if traced and tracing_available() else None
        # The config translated: its providers, connection pool and rails, and each call's plan.
        self._plans = PlanBuilder(config, llm)
        for name, fn in config.actions.items():
            self.register_action(fn, name)

    def register_action(self, fn: Callable[..., Any], name: str | None = None) -> None:
        """Register ``fn`` (sync or async) as the action ``name`` (default: its own name)."""
        name = name or action_name_of(fn) or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"cannot tell the action name of {fn!r}: pass name=")
        self._plans.actions[name] = Action.from_callable(fn, name)

    async def aclose(self) -> None:
        """Close the pooled HTTP connections. ``async with LLMRails(config) as rails:`` does it."""
        if in_asyncio():
            await (await AsyncioBridge.get()).call(self._plans.http.aclose)
        else:
            await self._plans.http.aclose()

    async def __aenter__(self) -> LLMRails:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def check(self, *, main_model: bool = True) -> None:
        """Find now what a call would: an output flow with no rail behind it, and (with
        ``main_model``, for callers that never pass ``generator=``) no model of type main.

        Raises ``ConfigError``, one ``file:line: path: problem`` line each. Calls resolve
        their rails only when they start, so that actions registered after this facade was
        built count; a server, whose actions all come from actions.py, checks at start instead.
        """
        self._plans.check(main_model=main_model)

    def provider(self, model_type: str = "main") -> ChatProvider | None:
        """The provider serving ``model_type`` (for inspection, tests and benchmarks)."""
        return self._plans.providers.get(model_type)

    # calls

    def stream_async(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        prompt: str | None = None,
        options: GenerationOptions | Mapping[str, Any] | None = None,
        include_metadata: bool = False,
        generator: AsyncIterator[str] | None = None,
    ) -> RailsStream:
        """Stream the guarded reply. Errors in the request are raised here, at call time."""
        output = self.config.rails.output
        if output.flows and not output.streaming.enabled:
            raise StreamingNotSupportedError(
                "output rails are configured but rails.output.streaming.enabled is not true: "
                "set it to true in config.yml to stream with output rails (or use generate_async)"
            )
        plan = self._plan(messages, prompt, options, generator, streaming=True, host=_host_here())
        return RailsStream(self._pipeline(plan), include_metadata=include_metadata)

    async def generate_async(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        prompt: str | None = None,
        options: GenerationOptions | Mapping[str, Any] | None = None,
        streaming_handler: StreamingHandler | None = None,
    ) -> str | dict[str, Any] | GenerationResponse:
        """The whole guarded reply: the assistant message, or with ``options`` a response + log.

        Output rails see the whole reply at once; with ``streaming_handler`` they see it window
        by window, exactly as with :meth:`stream_async`, and the handler gets the chunks.
        """
        host = _host_here()
        if in_asyncio():
            bridge = await AsyncioBridge.get()
            return await bridge.call(
                self._generate_in_trio, messages, prompt, options, streaming_handler, host
            )
        return await self._generate_in_trio(messages, prompt, options, streaming_handler, host)

    async def _generate_in_trio(
        self,
        messages: Sequence[Mapping[str, Any]] | None,
        prompt: str | None,
        options: GenerationOptions | Mapping[str, Any] | None,
        streaming_handler: StreamingHandler | None,
        host: UserCode,
    ) -> str | dict[str, Any] | GenerationResponse:
        parsed = parse_options(options)
        plan = self._plan(
            messages, prompt, parsed, None, streaming=streaming_handler is not None, host=host
        )
        pipeline = self._pipeline(plan)
        parts: list[str] = []
        final: StreamEnded | StreamFailed | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipeline.run)
                with pipeline.output:
                    async for event in pipeline.output:
                        if isinstance(event, Released):
                            parts.append(event.text)
                            if streaming_handler is not None:
                                await streaming_handler.push_chunk(event.text)
                        else:
                            final = event
                            if isinstance(event, StreamFailed) and streaming_handler is not None:
                                await streaming_handler.push_chunk(event.error.to_json())
            if streaming_handler is not None:
                await streaming_handler.push_chunk(None)  # the end: what it held back goes on
        finally:
            if streaming_handler is not None:
                streaming_handler.close()
        content = "".join(parts)
        if isinstance(final, StreamFailed):
            content = self._failed_reply(final, self.config.rails.refusal)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if isinstance(final, StreamEnded) and final.tool_calls:
            message["tool_calls"] = [dict(call) for call in final.tool_calls]
        # As NeMo answers: a prompt= gets the reply's text, messages= the assistant message.
        reply: str | dict[str, Any] = content if prompt is not None else message
        if parsed is None:
            return reply
        return GenerationResponse(
            response=reply if isinstance(reply, str) else [reply],
            log=GenerationLog.from_ledger(pipeline.ledger, parsed.log),
            output_data=_output_data(parsed, plan, content, pipeline.ledger),
        )

    def generate(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        prompt: str | None = None,
        options: GenerationOptions | Mapping[str, Any] | None = None,
    ) -> str | dict[str, Any] | GenerationResponse:
        """Sync :meth:`generate_async`, for code that runs no event loop."""
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        if library is not None:
            raise RuntimeError(
                f"generate() cannot run inside a running {library} event loop; "
                "use `await rails.generate_async(...)` instead"
            )

        async def run() -> str | dict[str, Any] | GenerationResponse:
            try:
                return await self.generate_async(messages, prompt, options)
            finally:
                await self.aclose()  # this run's connections end with it

        return trio.run(run)

    def explain(self) -> ExplainInfo:
        """NeMo's ``explain()``: the LLM calls of this facade's last call (so far, if it is
        still running). With concurrent calls, "last" is the one started last."""
        if self._last_ledger is None:
            return ExplainInfo()
        return ExplainInfo(llm_calls=GenerationLog.from_ledger(self._last_ledger).llm_calls)

    # internals

    def add_observer(self, observer: Callable[[UsageLedger], None]) -> None:
        """Call ``observer`` with each finished call's record (its LLM calls and rail runs),
        as the call ends (a server's metrics use this). It must be quick and must not raise;
        if it does, the error is logged and the call is not affected."""
        self._observers.append(observer)

    def _pipeline(self, plan: PipelinePlan) -> Pipeline:
        # The caller's trace context, now: the stream's span will be a child of its span.
        parent = self._tracer.current_context() if self._tracer is not None else None
        pipeline = Pipeline(
            attrs.evolve(plan, on_finished=functools.partial(self._finished, parent))
        )
        self._last_ledger = pipeline.ledger
        return pipeline

    def _finished(self, parent: Any, ledger: UsageLedger) -> None:
        _log_finished(ledger)
        if self._tracer is not None:
            try:
                self._tracer.record(ledger, parent, {"railstream.config": self.config.source})
            except Exception:
                _LOG.exception("recording a call's trace failed")
        for observer in self._observers:
            try:
                observer(ledger)
            except Exception:
                _LOG.exception("an observer of finished calls failed (%r)", observer)

    @staticmethod
    def _failed_reply(final: StreamFailed, refusal: str) -> str:
        error = final.error
        if error.type == "guardrails_violation":
            return refusal
        if error.type == "internal_error":
            return INTERNAL_ERROR_REPLY
        # The model failed: the generation stage hands on the provider's own exception
        # (ProviderTimeoutError, DownstreamError, ...), so callers can tell a stall from a
        # refused connection from a 429.
        if isinstance(final.cause, GenerationError):
            raise final.cause
        raise GenerationError(error.message)

    def _rails(self, side: Side = "output") -> list[Rail]:
        """The rails of ``side``'s flows, resolved as a call resolves them now."""
        return self._plans.rails(side)

    def _plan(
        self,
        messages: Sequence[Mapping[str, Any]] | None,
        prompt: str | None,
        options: GenerationOptions | Mapping[str, Any] | None,
        generator: AsyncIterator[str] | None,
        *,
        streaming: bool,
        host: UserCode,
    ) -> PipelinePlan:
        checked, context_vars = checked_conversation(
            messages, prompt, generator, input_flows=self.config.rails.input.flows
        )
        parsed = parse_options(options)
        return self._plans.plan(
            checked,
            context_vars=context_vars,
            parameters=dict(parsed.llm_params) if parsed else {},
            generator=generator,
            streaming=streaming,
            host=host,
        )


_LOG = logging.getLogger("railstream.calls")


def _output_data(
    options: GenerationOptions, plan: PipelinePlan, reply: str, ledger: UsageLedger
) -> dict[str, Any] | None:
    """NeMo's ``output_vars``: the context variables at the end of the call (all with True,
    else those named; a name no variable has is None)."""
    names = options.output_vars
    if names is None or names is False:
        return None
    stopped = {run.side: run.rail for run in ledger.rail_runs if run.verdict != "pass"}
    variables = {
        **plan.context_vars,
        "user_message": plan.user_message,
        "bot_message": reply,
        "triggered_input_rail": stopped.get("input"),
        "triggered_output_rail": stopped.get("output"),
    }
    if names is True:
        return variables
    return {name: variables.get(name) for name in names}


def _log_to_stderr() -> None:
    """``verbose=True``: the ``railstream`` loggers at INFO, to stderr unless they have a
    handler."""
    logger = logging.getLogger("railstream")
    logger.setLevel(logging.INFO)
    logging.getLogger("railstream.calls").setLevel(logging.DEBUG)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)


def _log_finished(ledger: UsageLedger) -> None:
    """One line per LLM call and per rail run of a finished call, at DEBUG (a server's INFO
    is one line per request)."""
    if not _LOG.isEnabledFor(logging.DEBUG):
        return
    for call in ledger.llm_calls:
        usage = call.usage
        _LOG.debug(
            "LLM call %s on %s: %s in %.3f s, %s prompt + %s completion tokens",
            call.task,
            call.model or call.provider,
            call.status,
            call.duration,
            usage.prompt_tokens,
            usage.completion_tokens,
        )
    for run in ledger.rail_runs:
        reason = f" ({run.reason})" if run.reason else ""
        _LOG.debug(
            "%s rail %r on window %d: %s in %.1f ms%s",
            run.side,
            run.rail,
            run.window_index,
            run.verdict,
            run.duration * 1000,
            reason,
        )


def _host_here() -> UserCode:
    """Where the calling application's code runs: its asyncio loop, or trio."""
    return AsyncioUserCode.here() if in_asyncio() else TrioUserCode()
