"""A configuration as the pipeline runs it: its models as providers (on one connection pool),
its flows as rails (a registered action first, else a built-in), and one call's checked
conversation as the :class:`PipelinePlan` of that call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from railstream.config_schema import ConfigError, OpenAISettings, RailsConfig, locate, parse_flow
from railstream.stages import InvalidRequestError, RailNotFoundError, UserCode, content_text
from railstream.stages.generation import (
    ChatProvider,
    ChatRequest,
    HttpClients,
    IteratorProvider,
    LangChainProvider,
    WholeReply,
    is_langchain_chat_model,
    make_provider,
)
from railstream.stages.rails import Action, ActionRail, Rail, builtin_rail

from ._pipeline import PipelinePlan

__all__ = ["PlanBuilder", "Side"]

Side = Literal["input", "output"]
_SIDES: tuple[Side, ...] = ("input", "output")


class PlanBuilder:
    """One configuration's providers and rails, and the plan of each call made on it.

    Rails are resolved when a call's plan is built, not here, so that actions registered in
    :attr:`actions` after construction count.
    """

    def __init__(self, config: RailsConfig, llm: object = None) -> None:
        """``llm``: a provider or LangChain chat model to use as ``main`` (None: the config's)."""
        self.config = config
        # Registered actions by name; a flow of an action's name runs it.
        self.actions: dict[str, Action] = {}
        main = config.model("main")
        settings = (
            OpenAISettings.from_parameters(main.parameters)
            if main and main.engine == "openai"
            else OpenAISettings()
        )
        # One connection pool for every model of this config, sized by the main model's settings.
        self.http = HttpClients(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
        )
        self.providers: dict[str, ChatProvider] = {
            m.type: make_provider(m, self.http) for m in config.models
        }
        if llm is not None:
            self.providers["main"] = _as_provider(llm)
        # Each flow's action name, read once (a flow may carry $parameters after its name).
        self._action_names = {
            flow: parse_flow(flow).name.replace(" ", "_")
            for flow in (*config.rails.input.flows, *config.rails.output.flows)
        }
        self._builtin: dict[str, Rail] = {}
        for flow in (*config.rails.input.flows, *config.rails.output.flows):
            if self._action_names[flow] in config.actions:
                continue  # actions.py serves it: no built-in (nor its prompt) is needed
            rail = builtin_rail(flow, config, self.providers, self.http)
            if rail is not None:
                self._builtin[flow] = rail

    def check(self, *, main_model: bool = True) -> None:
        """Raise ``ConfigError`` for each flow with no rail behind it now, and (with
        ``main_model``) for a missing model of type main; one ``file:line: path: problem`` each."""
        source = self.config.source
        problems = [
            locate(source, ("rails", side, "flows", i), self._no_rail(flow, side))
            for side in _SIDES
            for i, flow in enumerate(self._flows(side))
            if self._rail(flow, side) is None
        ]
        if main_model and "main" not in self.providers:
            problems.append(locate(source, ("models",), "no model of type main: add one to models"))
        if problems:
            raise ConfigError(problems)

    def rails(self, side: Side = "output") -> list[Rail]:
        """The rails of ``side``'s flows, in order; ``RailNotFoundError`` for one with none."""
        rails: list[Rail] = []
        for flow in self._flows(side):
            rail = self._rail(flow, side)
            if rail is None:
                raise RailNotFoundError(self._no_rail(flow, side))
            rails.append(rail)
        return rails

    def plan(
        self,
        checked: tuple[dict[str, Any], ...],
        *,
        context_vars: Mapping[str, Any],
        parameters: dict[str, Any],
        generator: AsyncIterator[str] | None,
        streaming: bool,
        host: UserCode,
    ) -> PipelinePlan:
        """One call's plan. ``checked``: its validated conversation, context messages taken
        out (their variables are ``context_vars``); ``parameters``: the caller's model
        parameters; ``host``: where the application's code (actions, generator) runs."""
        rails = self.rails()
        input_rails = self.rails("input")
        provider: ChatProvider
        if generator is not None:
            if not hasattr(generator, "__anext__"):
                raise InvalidRequestError("generator: expected an async iterator of strings")
            provider = IteratorProvider(generator, host)
        else:
            main = self.providers.get("main")
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
        # The rails read text: a message of content parts is its text parts joined.
        user_message = content_text(checked[last_user]["content"]) if last_user is not None else ""
        # What came before it, as the rails that judge a message in context read it.
        history = tuple(
            {"role": m["role"], "content": content_text(m["content"])}
            for m in checked[: last_user or 0]
            if m["role"] in ("user", "assistant") and isinstance(m.get("content"), str | list)
        )
        streaming_config = self.config.rails.output.streaming
        inputs = self.config.rails.input
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
        action = self.actions.get(self._action_names[flow])
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
            f"railstream.stages.generation.ChatProvider, got {type(llm).__name__} (it has no "
            f"{', '.join(missing)}); or configure the model in config.yml (models, type main)"
        )
    return llm  # type: ignore[return-value]
