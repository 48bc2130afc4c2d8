"""``LLMRails``: the facade users hold. It turns calls into pipeline plans and runs them."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal

import attrs
import sniffio
import trio

from config_schema import ConfigError, RailsConfig
from config_schema.actions import action_name_of
from config_schema.engines import OpenAISettings
from config_schema.flows import parse_flow
from config_schema.loader import locate
from stages.generation import (
    ChatProvider,
    ChatRequest,
    HttpClients,
    IteratorProvider,
    LangChainProvider,
    WholeReply,
    is_langchain_chat_model,
    make_provider,
)
from stages.rails import Action, ActionRail, Rail, builtin_rail
from stages.usage import UsageLedger
from stages.usercode import TrioUserCode, UserCode

from .asyncio_bridge import AsyncioBridge, AsyncioUserCode, in_asyncio
from .errors import (
    GenerationError,
    InvalidRequestError,
    RailNotFoundError,
    StreamingNotSupportedError,
)
from .log import (
    ExplainInfo,
    GenerationLog,
    GenerationOptions,
    GenerationResponse,
    parse_options,
)
from .messages import Released, StreamEnded, StreamFailed
from .pipeline import BLOCKED_REPLY, Pipeline, PipelinePlan
from .stream import RailsStream
from .streaming import StreamingHandler
from .tracing import Tracer, tracing_available

__all__ = ["BLOCKED_REPLY", "INTERNAL_ERROR_REPLY", "LLMRails"]

INTERNAL_ERROR_REPLY = "I'm sorry, an internal error has occurred."

_ROLES = ("system", "user", "assistant", "tool", "developer")

Side = Literal["input", "output"]
_SIDES: tuple[Side, ...] = ("input", "output")


def _validate_messages(messages: object) -> tuple[dict[str, Any], ...]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages: expected a list of messages, got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidRequestError("messages: the list is empty; give at least one message")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{i}]: expected a dict with role and content, got {type(message).__name__}"
            )
        role = message.get("role")
        if role == "context":
            # NeMo's context message: variables for the actions, never sent to the model.
            content = message.get("content")
            if not isinstance(content, Mapping) or not all(isinstance(k, str) for k in content):
                raise InvalidRequestError(
                    f"messages[{i}].content: a context message holds a dict of variables, "
                    f"got {type(content).__name__}"
                )
            checked.append({"role": "context", "content": dict(content)})
            continue
        if role not in _ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role: expected one of {', '.join((*_ROLES, 'context'))}, "
                f"got {role!r}"
            )
        content = message.get("content")
        if not isinstance(content, str) and not (content is None and role in ("assistant", "tool")):
            raise InvalidRequestError(
                f"messages[{i}].content: expected a string, got {type(content).__name__}"
            )
        checked.append(dict(message))
    return tuple(checked)


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
        """``llm``: a model of your own to use as ``main`` (see ``stages.generation.ChatProvider``).

        ``tracer_provider``: where the OpenTelemetry spans of each call go (the global
        provider if None; with no provider configured, or without opentelemetry-api, none are
        made; see ``engine.tracing``).

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
        self._actions: dict[str, Action] = {}
        main = config.model("main")
        settings = (
            OpenAISettings.from_parameters(main.parameters)
            if main and main.engine == "openai"
            else OpenAISettings()
        )
        # One connection pool for every model of this facade, sized by the main model's settings.
        self._http = HttpClients(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
        )
        self._providers: dict[str, ChatProvider] = {
            m.type: make_provider(m, self._http) for m in config.models
        }
        if llm is not None:
            self._providers["main"] = _as_provider(llm)
        # Each flow's action name, read once (a flow may carry $parameters after its name).
        self._action_names = {
            flow: parse_flow(flow).name.replace(" ", "_")
            for flow in (*config.rails.input.flows, *config.rails.output.flows)
        }
        self._builtin: dict[str, Rail] = {}
        for flow in (*config.rails.input.flows, *config.rails.output.flows):
            if self._action_names[flow] in config.actions:
                continue  # actions.py serves it: no built-in (nor its prompt) is needed
            rail = builtin_rail(flow, config, self._providers, self._http)
            if rail is not None:
                self._builtin[flow] = rail
        for name, fn in config.actions.items():
            self.register_action(fn, name)

    def register_action(self, fn: Callable[..., Any], name: str | None = None) -> None:
        """Register ``fn`` (sync or async) as the action ``name`` (default: its own name)."""
        name = name or action_name_of(fn) or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"cannot tell the action name of {fn!r}: pass name=")
        self._actions[name] = Action.from_callable(fn, name)

    async def aclose(self) -> None:
        """Close the pooled HTTP connections. ``async with LLMRails(config) as rails:`` does it."""
        if in_asyncio():
            await (await AsyncioBridge.get()).call(self._http.aclose)
        else:
            await self._http.aclose()

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
        source = self.config.source
        problems = [
            locate(source, ("rails", side, "flows", i), self._no_rail(flow, side))
            for side in _SIDES
            for i, flow in enumerate(self._flows(side))
            if self._rail(flow, side) is None
        ]
        if main_model and "main" not in self._providers:
            problems.append(locate(source, ("models",), "no model of type main: add one to models"))
        if problems:
            raise ConfigError(problems)

    def provider(self, model_type: str = "main") -> ChatProvider | None:
        """The provider serving ``model_type`` (for inspection, tests and benchmarks)."""
        return self._providers.get(model_type)

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

    def _check_request_parameters(self, parameters: Mapping[str, Any]) -> None:
        """A caller's parameters within the config's ``request_parameters`` (operator's policy)."""
        policy = self.config.request_parameters
        for name, value in parameters.items():
            if policy.allow is not None and name not in policy.allow:
                allowed = ", ".join(policy.allow) or "none"
                raise InvalidRequestError(
                    f"{name}: set by this config's operator, not per request "
                    f"(request_parameters.allow: {allowed})",
                    param=name,
                )
            bound = policy.max.get(name)
            if bound is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequestError(f"{name}: expected a number, got {value!r}", param=name)
            if value > bound:
                raise InvalidRequestError(
                    f"{name}: at most {bound:g} on this config (request_parameters.max), got {value:g}",
                    param=name,
                )

    def _flows(self, side: Side) -> tuple[str, ...]:
        return self.config.rails.input.flows if side == "input" else self.config.rails.output.flows

    def _rail(self, flow: str, side: Side = "output") -> Rail | None:
        # A registered action of the flow's name wins over the built-in of that name, as in
        # NeMo (an application's own self_check_output replaces NeMo's).
        action = self._actions.get(self._action_names[flow])
        if action is not None:
            return ActionRail(flow, action, side)
        return self._builtin.get(flow)

    @staticmethod
    def _no_rail(flow: str, side: Side = "output") -> str:
        action_name = flow.replace(" ", "_")
        return (
            f"{side} flow {flow!r} has no rail: it is not a built-in rail and no action named "
            f"{action_name!r} is registered (add @action() to it in actions.py, or "
            f"call rails.register_action(fn, name={action_name!r}))"
        )

    def _rails(self, side: Side = "output") -> list[Rail]:
        rails: list[Rail] = []
        for flow in self._flows(side):
            rail = self._rail(flow, side)
            if rail is None:
                raise RailNotFoundError(self._no_rail(flow, side))
            rails.append(rail)
        return rails

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
        if messages is not None and prompt is not None:
            raise InvalidRequestError("give either messages= or prompt=, not both")
        if messages is None and prompt is None and generator is None:
            raise InvalidRequestError("give messages= or prompt= (or generator= to stream)")
        if messages is None and prompt is None:
            # NeMo's stream_async(generator=gen): the generator's text through the output
            # rails. There is no user message for input rails to check: refused, not skipped.
            if self.config.rails.input.flows:
                raise InvalidRequestError(
                    "this config has input rails: pass messages= (or prompt=) with the user's "
                    "message for them to check, along with generator="
                )
            checked: tuple[dict[str, Any], ...] = ()
        elif prompt is not None:
            if not isinstance(prompt, str):
                raise InvalidRequestError(f"prompt: expected a string, got {type(prompt).__name__}")
            checked = ({"role": "user", "content": prompt},)
        else:
            checked = _validate_messages(messages)
        # Context messages become variables (the last one wins a name); the model never sees them.
        context_vars: dict[str, Any] = {}
        for message in checked:
            if message["role"] == "context":
                context_vars.update(message["content"])
        checked = tuple(m for m in checked if m["role"] != "context")
        if not checked and (messages is not None or prompt is not None):
            raise InvalidRequestError("messages: only context messages; give the conversation too")
        parsed = parse_options(options)
        rails = self._rails()
        input_rails = self._rails("input")
        provider: ChatProvider
        if generator is not None:
            if not hasattr(generator, "__anext__"):
                raise InvalidRequestError("generator: expected an async iterator of strings")
            provider = IteratorProvider(generator, host)
        else:
            main = self._providers.get("main")
            if main is None:
                raise InvalidRequestError(
                    "the config has no model of type main: add one to models, or pass generator="
                )
            if isinstance(main, LangChainProvider):
                main = main.on(host)  # its asyncio code runs where the caller's does
            # Without streaming, the model is asked for its whole reply (a plain request).
            provider = main if streaming else WholeReply(main)
        last_user = next(
            (i for i in range(len(checked) - 1, -1, -1) if checked[i]["role"] == "user"), None
        )
        user_message = (checked[last_user]["content"] or "") if last_user is not None else ""
        # What came before it, as the rails that judge a message in context read it.
        history = tuple(
            {"role": m["role"], "content": m["content"]}
            for m in checked[: last_user or 0]
            if m["role"] in ("user", "assistant") and isinstance(m.get("content"), str)
        )
        streaming_config = self.config.rails.output.streaming
        inputs = self.config.rails.input
        parameters = dict(parsed.llm_params) if parsed else {}
        self._check_request_parameters(parameters)
        if self.config.instructions and generator is None:
            # NeMo's general instructions: the main call's system message, before the
            # conversation's own (the rails see the user's message, not these).
            system = "\n".join(i.content.strip() for i in self.config.instructions)
            checked = ({"role": "system", "content": system}, *checked)
        request = ChatRequest(messages=checked, task="general", parameters=parameters)
        return PipelinePlan(
            provider=provider,
            request=request,
            rails=rails,
            parallel=self.config.rails.output.parallel,
            rail_timeout_s=streaming_config.rail_timeout_s,
            rail_timeouts_s=streaming_config.rail_timeouts_s,
            chunk_size=streaming_config.chunk_size if streaming else None,
            context_size=streaming_config.context_size,
            stream_first=streaming_config.stream_first if streaming else False,
            max_concurrent_checks=streaming_config.max_concurrent_checks,
            user_message=user_message,
            history=history,
            context_vars=context_vars,
            input_rails=input_rails,
            input_parallel=inputs.parallel,
            input_rail_timeout_s=inputs.rail_timeout_s,
            input_rail_timeouts_s=inputs.rail_timeouts_s,
            speculative_generation=inputs.speculative_generation,
            refusal=self.config.rails.refusal,
            config=self.config,
            host=host,
        )


_LOG = logging.getLogger("railstream.calls")


def _as_provider(llm: object) -> ChatProvider:
    """``llm=``: a provider of railstream's, or a LangChain chat model; anything else is
    refused here, not at the first call."""
    if is_langchain_chat_model(llm):
        return LangChainProvider(llm)
    missing = [
        name
        for name in ("stream", "complete", "provider_name", "model_name")
        if not hasattr(llm, name)
    ]
    if missing:
        raise TypeError(
            f"llm: expected a LangChain chat model (langchain-core installed) or a "
            f"stages.generation.ChatProvider, got {type(llm).__name__} (it has no "
            f"{', '.join(missing)}); or configure the model in config.yml (models, type main)"
        )
    return llm  # type: ignore[return-value]


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
