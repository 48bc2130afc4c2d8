"""Built-in rails.

- ``self check output``: an LLM judge with the ``self_check_output`` prompt.
- ``content safety check output``: a Llama Guard-style judge on the ``content_safety`` model
  with the ``content_safety_check_output`` prompt; answers ``safe``, or ``unsafe`` and then
  its categories (``S1,S10``), which the log keeps.
- ``blocklist check output``: words and regular expressions from ``rails.output.blocklist``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Literal

import jinja2
import jinja2.meta
import jinja2.sandbox
import trio

from config_schema import BlocklistConfig
from engine.messages import LLMCall, Stopwatch, Usage, Window
from stages.generation import ChatProvider, ChatRequest, Completion

from .context import RailContext, RailResult

__all__ = [
    "BUILTIN_RAIL_PROMPTS",
    "BlocklistCheckOutput",
    "ContentSafetyCheckOutput",
    "SelfCheckOutput",
    "parse_judge_answer",
    "parse_safety_answer",
]

# Judge flows, the prompt task each needs, and the model type that serves it (else main).
BUILTIN_RAIL_PROMPTS = {
    "self check output": ("self_check_output", "self_check_output"),
    "content safety check output": ("content_safety_check_output", "content_safety"),
}

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


def parse_safety_answer(answer: str) -> tuple[bool, list[str]]:
    """``(allowed, categories)`` from a Llama Guard-style answer; unreadable answers block."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    verdict = lines[0].lower() if lines else ""
    if verdict == "safe":
        return True, []
    categories = [c.strip() for c in lines[1].split(",") if c.strip()] if len(lines) > 1 else []
    return False, categories


class _LLMJudge:
    """A rail that asks a model about the window: prompt, call, record, verdict."""

    name: str
    action_name: str

    def __init__(self, *, template: str, provider: ChatProvider) -> None:
        source = _ENV.parse(template)
        unknown = jinja2.meta.find_undeclared_variables(source) - _TEMPLATE_VARIABLES
        if unknown:
            # A typo here would judge an empty text, and likely let everything through.
            raise ValueError(
                f"the {self.action_name} prompt uses {', '.join(sorted(unknown))}; "
                f"it may use only {{{{ bot_response }}}} and {{{{ user_input }}}}"
            )
        self._template = _ENV.from_string(template)
        self._provider = provider

    async def _ask(self, window: Window, context: RailContext) -> str:
        prompt = self._template.render(bot_response=window.text, user_input=context.user_message)
        request = ChatRequest(
            messages=({"role": "user", "content": prompt},), task=self.action_name
        )
        watch = Stopwatch()
        try:
            completion = await self._provider.complete(request)
        except Exception:
            await _record_anyway(context, self._record(prompt, window, watch, "failed", None))
            raise
        except BaseException:
            # Cut off (its rail's timeout, a block, a parallel rail's first block): the call
            # was made and may be billed, so it is in the log, with what is known of it.
            await _record_anyway(context, self._record(prompt, window, watch, "cancelled", None))
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


async def _record_anyway(context: RailContext, call: LLMCall) -> None:
    """Record ``call`` even while cancelled; only a usage stage already gone is no place."""
    with (
        trio.CancelScope(shield=True),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await context.record(call)


class SelfCheckOutput(_LLMJudge):
    name = "self check output"
    action_name = "self_check_output"

    async def check(self, window: Window, context: RailContext) -> RailResult:
        answer = await self._ask(window, context)
        allowed = parse_judge_answer(answer)
        reason = None if allowed else f"the judge answered {answer.strip()[:80]!r}"
        return RailResult(allowed=allowed, reason=reason, return_value=allowed)


class ContentSafetyCheckOutput(_LLMJudge):
    name = "content safety check output"
    action_name = "content_safety_check_output"

    async def check(self, window: Window, context: RailContext) -> RailResult:
        answer = await self._ask(window, context)
        allowed, categories = parse_safety_answer(answer)
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


class BlocklistCheckOutput:
    """Blocks a window holding a listed word (whole, case-folded) or matching a pattern."""

    name = "blocklist check output"
    action_name = "blocklist_check_output"

    def __init__(self, config: BlocklistConfig) -> None:
        self._fold = not config.case_sensitive
        words = [w.casefold() if self._fold else w for w in config.words]
        # Whole words: not preceded or followed by a word character (works for phrases too).
        self._words = (
            re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words)) if words else None
        )
        flags = re.IGNORECASE if self._fold else 0
        self._patterns = (
            re.compile("|".join(f"(?:{p})" for p in config.patterns), flags)
            if config.patterns
            else None
        )

    def find(self, text: str) -> str | None:
        """The first blocked word or pattern match in ``text``, if any."""
        if self._words is not None:
            match = self._words.search(text.casefold() if self._fold else text)
            if match:
                return match.group()
        if self._patterns is not None:
            match = self._patterns.search(text)
            if match:
                return match.group()
        return None

    async def check(self, window: Window, context: RailContext) -> RailResult:
        found = self.find(window.text)
        if found is None:
            return RailResult(allowed=True, return_value=True)
        return RailResult(
            allowed=False, reason=f"matched {found!r}", return_value={"matched": found}
        )


def builtin_rail(flow: str, config: Any, providers: dict[str, ChatProvider]) -> Any:
    """The built-in rail for ``flow``, or None if it names none (it is then an action)."""
    if flow == "blocklist check output":
        return BlocklistCheckOutput(config.rails.output.blocklist)
    judge = BUILTIN_RAIL_PROMPTS.get(flow)
    if judge is None:
        return None
    task, model_type = judge
    prompt = config.prompt(task)
    provider = providers.get(model_type) or (
        providers.get("main") if flow == "self check output" else None
    )
    if prompt is None or provider is None:
        raise ValueError(
            f"flow {flow!r} needs a prompt for {task!r} and a model of type {model_type!r}"
        )
    cls = SelfCheckOutput if flow == "self check output" else ContentSafetyCheckOutput
    return cls(template=prompt.content, provider=provider)
