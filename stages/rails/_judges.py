"""The built-in LLM judges: a rail that renders its NeMo prompt for the window, asks a model,
logs the call and reads the answer (self check, content safety, Llama Guard, topic safety).

- ``self check input``: an LLM judge of the user's message, with the ``self_check_input``
  prompt (an input rail: ``{{ user_input }}`` is the message, ``{{ bot_response }}`` empty).
- ``self check output``: an LLM judge with the ``self_check_output`` prompt.
- ``content safety check output``: a Llama Guard-style judge on the ``content_safety`` model
  with the ``content_safety_check_output`` prompt; answers ``safe``, or ``unsafe`` and then
  its categories (``S1,S10``), which the log keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import jinja2
import jinja2.meta
import jinja2.sandbox

from railstream.config_schema import PromptConfig

from .._messages import LLMCall, Stopwatch, Usage, Window
from ..generation import ChatProvider, ChatRequest, Completion, prompt_text
from ._call_log import record_anyway
from ._context import RailContext, RailResult
from ._parsers import parse_judge_answer, parse_safety_answer, parse_with

__all__ = [
    "ContentSafetyCheckInput",
    "ContentSafetyCheckOutput",
    "LLMJudge",
    "LlamaGuardCheckInput",
    "LlamaGuardCheckOutput",
    "SelfCheckInput",
    "SelfCheckOutput",
    "TEMPLATE_VARIABLES",
    "TOPIC_SAFETY_OUTPUT_RESTRICTION",
    "TopicSafetyCheckInput",
    "template_variables",
]


# NeMo's prompt variables railstream renders (the others serve its dialog rails).
TEMPLATE_VARIABLES = frozenset(
    {"bot_response", "user_input", "config", "general_instructions", "reasoning_enabled"}
)
_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class LLMJudge:
    """A rail that asks a model about the window: prompt, call, record, verdict.

    The prompt is its ``content`` (sent as the user's message) or its ``messages`` (each with
    its role), rendered with NeMo's variables: ``user_input``, ``bot_response``, ``config``
    (the whole config: ``{{ config.instructions[0].content }}``), ``general_instructions``
    and ``reasoning_enabled`` (``rails.config.content_safety.reasoning.enabled``).
    """

    name: str
    action_name: str
    side: Literal["input", "output"] = "output"
    # The judge call's own parameters unless its prompt sets them (NeMo's, per rail).
    default_parameters: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        *,
        prompt: PromptConfig,
        provider: ChatProvider,
        name: str | None = None,
        config: Any = None,
    ) -> None:
        if name is not None:
            self.name = name  # as written in the config, parameters and all
        self._parser = prompt.output_parser
        # The prompt's max_tokens and stop, over the rail's own defaults.
        self._call_parameters = dict(self.default_parameters)
        if prompt.max_tokens is not None:
            self._call_parameters["max_tokens"] = prompt.max_tokens
        if prompt.stop is not None:
            self._call_parameters["stop"] = list(prompt.stop)
        parts = (
            [(m.role, m.content) for m in prompt.messages]
            if prompt.messages is not None
            else [("user", prompt.content or "")]
        )
        self._templates = [(role, self._compile(text)) for role, text in parts]
        self._variables = template_variables(config)
        self._provider = provider

    def _compile(self, template: str) -> jinja2.Template:
        source = _ENV.parse(template)
        unknown = jinja2.meta.find_undeclared_variables(source) - TEMPLATE_VARIABLES
        if unknown:
            # A typo here would judge an empty text, and likely let everything through.
            allowed = ", ".join(f"{{{{ {v} }}}}" for v in sorted(TEMPLATE_VARIABLES))
            raise ValueError(
                f"the {self.action_name} prompt uses {', '.join(sorted(unknown))}; "
                f"it may use only {allowed}"
            )
        return _ENV.from_string(template)

    def _messages(self, window: Window, context: RailContext) -> list[dict[str, Any]]:
        if self.side == "input":  # the window is the user's message; there is no reply yet
            values = {"bot_response": "", "user_input": window.text}
        else:
            values = {"bot_response": window.text, "user_input": context.user_message}
        return [
            {"role": role, "content": template.render(**self._variables, **values)}
            for role, template in self._templates
        ]

    async def _ask(self, window: Window, context: RailContext) -> str:
        messages = self._messages(window, context)
        prompt = prompt_text(messages)
        request = ChatRequest(
            messages=tuple(messages), task=self.action_name, parameters=self._call_parameters
        )
        watch = Stopwatch()
        try:
            completion = await self._provider.complete(request)
        except Exception:
            await record_anyway(context, self._record(prompt, window, watch, "failed", None))
            raise
        except BaseException:
            # Cut off (its rail's timeout, a block, a parallel rail's first block): the call
            # was made and may be billed, so it is in the log, with what is known of it.
            await record_anyway(context, self._record(prompt, window, watch, "cancelled", None))
            raise
        await context.record(self._record(prompt, window, watch, "completed", completion))
        return completion.text

    def _record(
        self,
        prompt: str,
        window: Window,
        watch: Stopwatch,
        status: Literal["completed", "cancelled", "failed"],
        completion: Completion | None,
    ) -> LLMCall:
        return LLMCall(
            task=self.action_name,
            model=self._provider.model_name,
            provider=self._provider.provider_name,
            usage=completion.usage if completion is not None else Usage(),
            streamed_tokens=0,
            status=status,
            **watch.stamps(),
            finish_reason=completion.finish_reason if completion is not None else None,
            window_index=window.index,
            prompt=prompt,
            completion=completion.text if completion is not None else None,
        )


def template_variables(config: Any) -> dict[str, Any]:
    """NeMo's prompt variables that come from the config, not from the text judged."""
    if config is None:
        return {"config": None, "general_instructions": "", "reasoning_enabled": False}
    return {
        "config": config,
        "general_instructions": "\n".join(
            i.content.strip() for i in config.instructions if i.type == "general"
        ),
        "reasoning_enabled": config.rails.config.content_safety.reasoning.enabled,
    }


class SelfCheckOutput(LLMJudge):
    name = "self check output"
    action_name = "self_check_output"

    async def check(self, window: Window, context: RailContext) -> RailResult:
        answer = await self._ask(window, context)
        if self._parser is not None:
            allowed, _ = parse_with(self._parser, answer)
        else:
            allowed = parse_judge_answer(answer)
        reason = None if allowed else f"the judge answered {answer.strip()[:80]!r}"
        return RailResult(allowed=allowed, reason=reason, return_value=allowed)


class SelfCheckInput(SelfCheckOutput):
    name = "self check input"
    action_name = "self_check_input"
    side = "input"


class ContentSafetyCheckOutput(LLMJudge):
    name = "content safety check output"
    action_name = "content_safety_check_output"

    async def check(self, window: Window, context: RailContext) -> RailResult:
        answer = await self._ask(window, context)
        if self._parser is not None:
            allowed, categories = parse_with(self._parser, answer)
        else:
            allowed, categories = parse_safety_answer(answer, side=self.side)
        reason = None
        if not allowed:
            reason = (
                f"unsafe: {', '.join(categories)}"
                if categories
                else f"the judge answered {answer.strip()[:80]!r}"
            )
        return RailResult(
            allowed=allowed,
            reason=reason,
            return_value={"allowed": allowed, "policy_violations": categories},
        )


class ContentSafetyCheckInput(ContentSafetyCheckOutput):
    name = "content safety check input"
    action_name = "content_safety_check_input"
    side = "input"


class LlamaGuardCheckInput(ContentSafetyCheckOutput):
    name = "llama guard check input"
    action_name = "llama_guard_check_input"
    side = "input"


class LlamaGuardCheckOutput(ContentSafetyCheckOutput):
    name = "llama guard check output"
    action_name = "llama_guard_check_output"


# NeMo's, appended to a topic control prompt that does not already end with it.
TOPIC_SAFETY_OUTPUT_RESTRICTION = (
    'If any of the above conditions are violated, please respond with "off-topic". '
    'Otherwise, respond with "on-topic". '
    'You must respond with "on-topic" or "off-topic".'
)


class TopicSafetyCheckInput(LLMJudge):
    """NemoGuard topic control, as NeMo asks it: the prompt is the system message (with the
    on-topic / off-topic instruction appended unless it ends so), then the conversation so
    far, then the user's message; ``on-topic`` allows, ``off-topic`` blocks, and anything
    else blocks too (NeMo lets it pass)."""

    name = "topic safety check input"
    action_name = "topic_safety_check_input"
    side = "input"
    default_parameters: ClassVar[Mapping[str, Any]] = {"temperature": 0.01, "max_tokens": 10}

    def _messages(self, window: Window, context: RailContext) -> list[dict[str, Any]]:
        rendered = super()._messages(window, context)
        if len(self._templates) == 1 and self._templates[0][0] == "user":
            # A content prompt: NeMo's system prompt, with its instruction to answer so.
            system = rendered[0]["content"].strip()
            if not system.endswith(TOPIC_SAFETY_OUTPUT_RESTRICTION):
                system = f"{system}\n\n{TOPIC_SAFETY_OUTPUT_RESTRICTION}"
            rendered = [{"role": "system", "content": system}]
        history = [dict(m) for m in context.history]
        return [*rendered, *history, {"role": "user", "content": window.text}]

    async def check(self, window: Window, context: RailContext) -> RailResult:
        answer = await self._ask(window, context)
        verdict = answer.strip().lower()
        allowed = verdict == "on-topic"
        reason = None
        if not allowed:
            reason = (
                "off-topic" if verdict == "off-topic" else f"the judge answered {answer[:80]!r}"
            )
        return RailResult(allowed=allowed, reason=reason, return_value={"on_topic": allowed})
