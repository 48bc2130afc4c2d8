"""Which model engines exist, and the checks of each engine's ``parameters``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .converter import Path, type_name

__all__ = ["SUPPORTED_ENGINES", "engine_parameter_problems"]

SUPPORTED_ENGINES = ("scripted",)

_SCRIPTED_KEYS = {"responses", "delay_ms", "report_usage"}


def _scripted_problems(params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for key in params:
        if key not in _SCRIPTED_KEYS:
            yield (key,), "unknown key (scripted takes responses, delay_ms, report_usage)"
    responses = params.get("responses")
    if responses is None:
        yield ("responses",), "required for engine scripted: a list of replies"
    elif not isinstance(responses, list) or not responses:
        yield ("responses",), f"expected a non-empty list, got {type_name(responses)}"
    else:
        for i, reply in enumerate(responses):
            if isinstance(reply, str):
                if not reply:
                    yield ("responses", i), "a reply must not be empty"
            elif isinstance(reply, list):
                if not reply:
                    yield ("responses", i), "a list of tokens must not be empty"
                for j, token in enumerate(reply):
                    if not isinstance(token, str) or not token:
                        yield ("responses", i, j), "a token must be a non-empty string"
            else:
                yield (
                    ("responses", i),
                    f"expected a string or a list of tokens, got {type_name(reply)}",
                )
    delay = params.get("delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        yield ("delay_ms",), f"expected a number, got {type_name(delay)}"
    elif delay < 0:
        yield ("delay_ms",), f"must be >= 0, got {delay}"
    if not isinstance(params.get("report_usage", True), bool):
        yield ("report_usage",), "expected true or false"


def engine_parameter_problems(engine: str, params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """Problems with ``parameters`` for ``engine``, as paths relative to ``parameters``."""
    if engine == "scripted":
        yield from _scripted_problems(params)
