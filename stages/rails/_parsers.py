"""Reading a judge's answer: a yes/no self check, a safety model's verdict and categories,
and the parsers a prompt can name (``output_parser``: NemoGuard's JSON, ``is_content_safe``,
Nemotron reasoning). A new answer format is one function here and a name in :func:`parse_with`.
"""

from __future__ import annotations

import json
import re
from typing import Literal

__all__ = [
    "parse_is_content_safe",
    "parse_judge_answer",
    "parse_nemotron_reasoning",
    "parse_safety_answer",
    "parse_with",
]

_WORD = re.compile(r"[a-z]+")


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
