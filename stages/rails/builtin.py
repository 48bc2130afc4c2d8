"""Built-in rails.

- ``self check input``: an LLM judge of the user's message, with the ``self_check_input``
  prompt (an input rail: ``{{ user_input }}`` is the message, ``{{ bot_response }}`` empty).
- ``self check output``: an LLM judge with the ``self_check_output`` prompt.
- ``content safety check output``: a Llama Guard-style judge on the ``content_safety`` model
  with the ``content_safety_check_output`` prompt; answers ``safe``, or ``unsafe`` and then
  its categories (``S1,S10``), which the log keeps.
- ``blocklist check output``: words and regular expressions from ``rails.output.blocklist``,
  matched in the text as a reader sees it (see :class:`BlocklistCheckOutput`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import httpx
import jinja2
import jinja2.meta
import jinja2.sandbox
import trio

from config_schema import BlocklistConfig, JailbreakDetectionConfig, PromptConfig
from config_schema.flows import builtin_judge, parse_flow
from engine.messages import LLMCall, Stopwatch, Usage, Window
from stages.generation import ChatProvider, ChatRequest, Completion, HttpClients, prompt_text

from .context import RailContext, RailResult

__all__ = [
    "BlocklistCheckOutput",
    "ContentSafetyCheckInput",
    "ContentSafetyCheckOutput",
    "JailbreakDetectionError",
    "JailbreakDetectionModel",
    "LlamaGuardCheckInput",
    "LlamaGuardCheckOutput",
    "SelfCheckInput",
    "SelfCheckOutput",
    "TEMPLATE_VARIABLES",
    "TopicSafetyCheckInput",
    "normalise_blocklist_text",
    "parse_judge_answer",
    "parse_safety_answer",
]


# NeMo's prompt variables railstream renders (the others serve its dialog rails).
TEMPLATE_VARIABLES = frozenset(
    {"bot_response", "user_input", "config", "general_instructions", "reasoning_enabled"}
)
_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_WORD = re.compile(r"[a-z]+")
_WORD_CHAR = re.compile(r"\w")
# Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt): what a renderer
# shows as nothing, so "for\u00adbid\u200bden" reads as "forbidden". Tag characters
# (U+E0000..) are in it too: they smuggle invisible ASCII.
_INVISIBLE = re.compile(
    r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)


def normalise_blocklist_text(text: str, *, fold: bool) -> str:
    r"""``text`` as the blocklist compares it: what a reader would take to be the same text.

    Invisible characters are removed (before NFKC, so what they kept apart may compose),
    compatibility forms become plain ones (full-width letters, ligatures), every run of
    whitespace becomes one space, and with ``fold`` the case is folded.

    >>> normalise_blocklist_text("\uff2caunch\u200b  \n Code", fold=True)
    'launch code'
    """
    # ASCII holds no invisible character and is its own NFKC form; most windows are ASCII.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    # str.split() finds the same whitespace as \s, in a quarter of re.sub's time; only the
    # runs at the ends, which it drops, are put back (a pattern may anchor on them).
    spaced = " ".join(text.split())
    if not spaced:
        spaced = " " if text else ""
    else:
        spaced = (" " if text[0].isspace() else "") + spaced + (" " if text[-1].isspace() else "")
    return spaced.casefold() if fold else spaced


def _is_word_edge(char: str) -> bool:
    """Does a blocked word ending in ``char`` need a boundary there to match whole?"""
    return _WORD_CHAR.match(char) is not None


def _whole_word(word: str) -> str:
    """A regex for ``word`` (normalised, not empty) that does not match inside a longer word.

    A boundary is asked only at an edge that is a word character: ``sk-`` must match in
    ``sk-abc``. The left one is a lookbehind placed after the first character, so the
    alternation of all words starts with literals, which lets ``re`` skip ahead to the
    positions where a word can start (a sixth of the time of a leading lookbehind). Its "."
    is the word's first character, never a line break: normalised words hold none.
    """
    left = "(?<!\\w.)" if _is_word_edge(word[0]) else ""
    right = "(?!\\w)" if _is_word_edge(word[-1]) else ""
    return f"{re.escape(word[0])}{left}{re.escape(word[1:])}{right}"


def parse_judge_answer(answer: str) -> bool:
    """Allowed? Of the first two words, yes/unsafe block and no/safe allow; anything else blocks."""
    for word in _WORD.findall(answer.lower())[:2]:
        if word in ("yes", "unsafe"):
            return False
        if word in ("no", "safe"):
            return True
    return False


def parse_safety_answer(
    answer: str, side: Literal["input", "output"] = "output"
) -> tuple[bool, list[str]]:
    """``(allowed, categories)`` from a safety model's answer; unreadable answers block.

    Llama Guard answers ``safe``, or ``unsafe`` and its categories on the next line (``S1,S10``);
    NemoGuard content safety answers JSON: ``{"User Safety": "safe", "Response Safety":
    "unsafe", "Safety Categories": "Violence, Criminal Planning"}``, the user's verdict for an
    input rail and the response's for an output rail.
    """
    text = answer.strip()
    if text.startswith("{"):
        try:
            verdicts = json.loads(text)
        except ValueError:
            return False, []
        if not isinstance(verdicts, dict):
            return False, []
        verdict = verdicts.get("User Safety" if side == "input" else "Response Safety")
        if isinstance(verdict, str) and verdict.strip().lower() == "safe":
            return True, []
        found = verdicts.get("Safety Categories")
        named = [c.strip() for c in found.split(",") if c.strip()] if isinstance(found, str) else []
        return False, named
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    verdict = lines[0].lower() if lines else ""
    if verdict == "safe":
        return True, []
    categories = [c.strip() for c in lines[1].split(",") if c.strip()] if len(lines) > 1 else []
    return False, categories


def parse_is_content_safe(answer: str) -> tuple[bool, list[str]]:
    """NeMo's ``is_content_safe``: ``safe`` / ``no`` allow; ``unsafe`` (its categories on the
    next line, Llama Guard) / ``yes`` (ShieldGemma: the text violates the policy) block;
    anything else blocks."""
    words = _WORD.findall(answer.lower())
    first = words[0] if words else ""
    if first in ("safe", "no"):
        return True, []
    if first == "unsafe":
        return parse_safety_answer(answer)
    return False, []


_HARM = re.compile(r"^\s*(prompt|response) harm\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def parse_nemotron_reasoning(
    answer: str, side: Literal["input", "output"]
) -> tuple[bool, list[str]]:
    """Nemotron Content Safety Reasoning's answer: an optional ``<think>...</think>``, then
    ``Prompt harm: harmful|unharmful`` and ``Response harm: ...``. Only what follows the
    reasoning is read (a verdict it mentions while thinking is not one); ``unharmful`` allows,
    anything else, or no verdict at all, blocks."""
    _, closed, after = answer.rpartition("</think>")
    if not closed and "<think>" in answer:
        return False, []  # cut off while thinking: no verdict
    verdicts = {kind.lower(): value.lower() for kind, value in _HARM.findall(after or answer)}
    verdict = verdicts.get("prompt" if side == "input" else "response")
    return verdict == "unharmful", []


def parse_with(parser: str, answer: str) -> tuple[bool, list[str]]:
    """``(allowed, categories)`` by the parser a prompt names (``output_parser``)."""
    if parser == "is_content_safe":
        return parse_is_content_safe(answer)
    if parser.startswith("nemotron_reasoning_parse_"):
        return parse_nemotron_reasoning(
            answer, "input" if parser.endswith("prompt_safety") else "output"
        )
    if parser not in ("nemoguard_parse_prompt_safety", "nemoguard_parse_response_safety"):
        raise ValueError(f"unknown output parser {parser!r}")  # the loader refuses these
    if not answer.strip().startswith("{"):
        return False, []  # NemoGuard answers JSON; anything else is unreadable, and blocks
    side: Literal["input", "output"] = "input" if parser.endswith("prompt_safety") else "output"
    return parse_safety_answer(answer, side=side)


class _LLMJudge:
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


class ContentSafetyCheckOutput(_LLMJudge):
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


class TopicSafetyCheckInput(_LLMJudge):
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


class JailbreakDetectionError(Exception):
    """The jailbreak detection endpoint could not give a verdict (the rail fails closed)."""


# Enough for any verdict; a larger answer is not one.
_JAILBREAK_ANSWER_LIMIT = 65536


class JailbreakDetectionModel:
    """NeMo's ``jailbreak detection model``: the user's message, asked of NemoGuard
    JailbreakDetect (``nim_base_url`` + ``nim_server_endpoint``: ``{"input": text}``) or of
    NeMo's jailbreak detection server (``server_endpoint``: ``{"prompt": text}``); both answer
    ``{"jailbreak": bool, ...}``. An endpoint that fails, or answers anything else, makes the
    rail fail closed (NeMo lets the message through). The call is in the log, as NeMo logs it,
    task ``jailbreak_detection_model``."""

    name = "jailbreak detection model"
    action_name = "jailbreak_detection_model"
    side: Literal["input", "output"] = "input"

    def __init__(self, settings: JailbreakDetectionConfig, http: HttpClients) -> None:
        if settings.nim_base_url:
            base = settings.nim_base_url.rstrip("/")
            self._url = f"{base}/{settings.nim_server_endpoint.lstrip('/')}"
            self._field = "input"
            self._provider = "nim"
        elif settings.server_endpoint:
            self._url = settings.server_endpoint
            self._field = "prompt"
            self._provider = "jailbreak_detection_server"
        else:  # the loader refuses this config
            raise ValueError("jailbreak detection model needs nim_base_url or server_endpoint")
        key = settings.api_key
        if key is None and settings.api_key_env_var:
            key = os.environ.get(settings.api_key_env_var)
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._http = http

    async def check(self, window: Window, context: RailContext) -> RailResult:
        watch = Stopwatch()
        body = b""
        try:
            async with self._http.stream(
                "POST", self._url, json={self._field: window.text}, headers=self._headers
            ) as response:
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > _JAILBREAK_ANSWER_LIMIT:
                        raise JailbreakDetectionError(
                            f"{self._url} answered more than {_JAILBREAK_ANSWER_LIMIT} bytes"
                        )
            status = response.status_code
            if status != 200:
                raise JailbreakDetectionError(
                    f"{self._url} answered HTTP {status}: {body[:200].decode(errors='replace')}"
                )
            jailbreak = _read_jailbreak(body)
        except Exception as exc:
            await _record_anyway(context, self._record(window, watch, "failed", body))
            if isinstance(exc, httpx.HTTPError):
                raise JailbreakDetectionError(f"{self._url}: {type(exc).__name__}: {exc}") from exc
            raise
        except BaseException:
            # Cut off (its rail's timeout, a parallel rail's block): in the log all the same.
            await _record_anyway(context, self._record(window, watch, "cancelled", body))
            raise
        await context.record(self._record(window, watch, "completed", body))
        if jailbreak:
            return RailResult(allowed=False, reason="jailbreak", return_value={"jailbreak": True})
        return RailResult(allowed=True, return_value={"jailbreak": False})

    def _record(
        self,
        window: Window,
        watch: Stopwatch,
        status: Literal["completed", "cancelled", "failed"],
        body: bytes,
    ) -> LLMCall:
        return LLMCall(
            task=self.action_name,
            model=None,
            provider=self._provider,
            usage=Usage(),
            streamed_tokens=0,
            status=status,
            **watch.stamps(),
            window_index=window.index,
            prompt=window.text,
            completion=body.decode(errors="replace") if body else None,
        )


def _read_jailbreak(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        raise JailbreakDetectionError(f"the answer is not JSON: {body[:200]!r}") from None
    verdict = answer.get("jailbreak") if isinstance(answer, dict) else None
    if not isinstance(verdict, bool):
        raise JailbreakDetectionError(
            f'the answer has no "jailbreak": true|false: {body[:200].decode(errors="replace")}'
        )
    return verdict


class BlocklistCheckOutput:
    r"""Blocks a window holding a listed word or matching a listed pattern.

    Words are matched in the window as a reader sees it: both the words and the text are
    normalised (:func:`normalise_blocklist_text`: NFKC, so full-width letters are letters;
    invisible characters such as U+200B or the soft hyphen removed; any run of whitespace as
    one space) and case-folded unless ``case_sensitive``. A word matches whole: a word
    character at its edge must not touch another word character, while a non-word edge
    (``sk-``) matches whatever follows. Patterns are tried on the text as written and on its
    normalised form (not case-folded: ``re.IGNORECASE`` does that), so a pattern that relies
    on line breaks keeps working and one that does not also catches the disguised text. What
    is reported is the match in the text it was found in, e.g. ``strasse`` for ``straße``.

    >>> rail = BlocklistCheckOutput(BlocklistConfig(words=("launch code",)))
    >>> rail.find("the Launch \u200b\n Code")
    'launch code'
    """

    name = "blocklist check output"
    action_name = "blocklist_check_output"

    def __init__(self, config: BlocklistConfig) -> None:
        self._fold = not config.case_sensitive
        words = []
        for word in config.words:
            normal = normalise_blocklist_text(word, fold=self._fold).strip(" ")
            if not normal:
                # The loader refuses blank words; one made only of invisible characters
                # passes it, and would silently never block anything.
                warnings.warn(
                    f"the blocked word {word!r} is empty once invisible characters and "
                    "whitespace are removed, so it can never match; it is ignored",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            words.append(_whole_word(normal))
        self._words = re.compile("|".join(words)) if words else None
        flags = re.IGNORECASE if self._fold else 0
        self._patterns = (
            re.compile("|".join(f"(?:{p})" for p in config.patterns), flags)
            if config.patterns
            else None
        )

    def find(self, text: str) -> str | None:
        """The first blocked word or pattern match in ``text``, if any."""
        normal = normalise_blocklist_text(text, fold=False)
        if self._words is not None:
            match = self._words.search(normal.casefold() if self._fold else normal)
            if match:
                return match.group()
        if self._patterns is not None:
            match = self._patterns.search(text)
            if match is None and normal != text:
                match = self._patterns.search(normal)
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


_JUDGE_CLASSES: dict[str, type[_LLMJudge]] = {
    "self check input": SelfCheckInput,
    "self check output": SelfCheckOutput,
    "content safety check input": ContentSafetyCheckInput,
    "content safety check output": ContentSafetyCheckOutput,
    "llama guard check input": LlamaGuardCheckInput,
    "llama guard check output": LlamaGuardCheckOutput,
    "topic safety check input": TopicSafetyCheckInput,
}


def builtin_rail(
    flow: str, config: Any, providers: Mapping[str, ChatProvider], http: HttpClients
) -> Any:
    """The built-in rail for ``flow`` (as written, parameters and all), or None if it names
    none (it is then an action)."""
    if flow == "blocklist check output":
        return BlocklistCheckOutput(config.rails.output.blocklist)
    if flow == "jailbreak detection model":
        return JailbreakDetectionModel(config.rails.config.jailbreak_detection, http)
    ref = parse_flow(flow)
    judge = builtin_judge(ref)
    if judge is None:
        return None
    task, model_type = judge
    # A self check runs on the model of its own task's type if there is one, else main.
    answering = model_type if model_type is not None else (task if task in providers else "main")
    provider = providers.get(answering)
    prompt = config.prompt(task, config.model(answering))
    if prompt is None or provider is None:
        raise ValueError(
            f"flow {flow!r} needs a prompt for {task!r} and a model of type {model_type or task!r}"
        )
    return _JUDGE_CLASSES[ref.name](prompt=prompt, provider=provider, name=flow, config=config)
