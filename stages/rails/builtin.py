"""Built-in rails: ``self check output`` (an LLM judge with the self_check_output prompt)."""

from __future__ import annotations

import re
import time
from typing import Literal

import jinja2
import jinja2.meta
import jinja2.sandbox

from engine.messages import LLMCall, Usage, Window
from stages.generation import ChatProvider, ChatRequest, Completion

from .context import RailContext, RailResult

__all__ = ["BUILTIN_RAIL_PROMPTS", "SelfCheckOutput", "parse_judge_answer"]

# Built-in flows and the prompt task each one needs.
BUILTIN_RAIL_PROMPTS = {"self check output": "self_check_output"}

_TEMPLATE_VARIABLES = frozenset({"bot_response", "user_input"})
_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_WORD = re.compile(r"[a-z]+")


def parse_judge_answer(answer: str) -> bool:
    """Allowed? Of the first two words, yes/unsafe block and no/safe allow; anything else blocks."""
    for word in _WORD.findall(answer.lower())[:2]:
        if word in ("yes", "unsafe"):
            return False
        if word in ("no", "safe"):
            return True
    return False


class SelfCheckOutput:
    """Asks a model whether the window's text should be blocked."""

    name = "self check output"
    action_name = "self_check_output"

    def __init__(self, *, template: str, provider: ChatProvider) -> None:
        source = _ENV.parse(template)
        unknown = jinja2.meta.find_undeclared_variables(source) - _TEMPLATE_VARIABLES
        if unknown:
            raise ValueError(
                f"the self_check_output prompt uses {', '.join(sorted(unknown))}; "
                f"it may use only {{{{ bot_response }}}} and {{{{ user_input }}}}"
            )
        self._template = _ENV.from_string(template)
        self._provider = provider

    async def check(self, window: Window, context: RailContext) -> RailResult:
        prompt = self._template.render(bot_response=window.text, user_input=context.user_message)
        request = ChatRequest(
            messages=({"role": "user", "content": prompt},), task="self_check_output"
        )
        started = time.time()
        try:
            completion = await self._provider.complete(request)
        except Exception:
            await context.record(self._record(prompt, started, "failed", None))
            raise
        await context.record(self._record(prompt, started, "completed", completion))
        allowed = parse_judge_answer(completion.text)
        reason = None if allowed else f"the judge answered {completion.text.strip()[:80]!r}"
        return RailResult(allowed=allowed, reason=reason, return_value=allowed)

    def _record(
        self,
        prompt: str,
        started: float,
        status: Literal["completed", "failed"],
        completion: Completion | None,
    ) -> LLMCall:
        return LLMCall(
            task="self_check_output",
            model=self._provider.model_name,
            provider=self._provider.provider_name,
            usage=completion.usage if completion is not None else Usage(),
            streamed_tokens=0,
            status=status,
            started_at=started,
            finished_at=time.time(),
            prompt=prompt,
            completion=completion.text if completion is not None else None,
        )
