"""A flow as NeMo writes it in ``rails.*.flows``: a name, then ``$name=value`` parameters.

``content safety check input $model=content_safety`` is the built-in ``content safety check
input`` on the model of type ``content_safety``, with the prompt of task
``content_safety_check_input $model=content_safety``. Values may be quoted (``$model="x"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

__all__ = [
    "HTTP_RAILS",
    "NEMO_ONLY_RAILS",
    "OUTPUT_PARSERS",
    "FlowRef",
    "builtin_judge",
    "nemo_only_problem",
    "parse_flow",
]

_PARAMETER = re.compile(r"""\$([A-Za-z_]\w*)=(?:"([^"]*)"|'([^']*)'|(\S+))""")

# NeMo's judge rails railstream has: flow name -> (prompt task, model type it needs or None:
# its own task's model if configured, else main).
_JUDGES: dict[str, tuple[str, str | None]] = {
    "self check input": ("self_check_input", None),
    "self check output": ("self_check_output", None),
    "content safety check input": ("content_safety_check_input", "content_safety"),
    "content safety check output": ("content_safety_check_output", "content_safety"),
    "llama guard check input": ("llama_guard_check_input", "llama_guard"),
    "llama guard check output": ("llama_guard_check_output", "llama_guard"),
    # Only with $model=X (NeMo asks for it): the model of type X, task "... $model=X".
    "topic safety check input": ("topic_safety_check_input", None),
}
# NeMo's built-in rails that ask an HTTP endpoint rather than a model: flow -> the side.
HTTP_RAILS = {"jailbreak detection model": "input"}
# NeMo's names of the answer parsers a judge prompt may pick (``output_parser``): Llama Guard
# and ShieldGemma answers (safe / unsafe + categories, yes / no), NemoGuard's JSON verdicts.
OUTPUT_PARSERS = frozenset(
    {
        "is_content_safe",
        "nemoguard_parse_prompt_safety",
        "nemoguard_parse_response_safety",
        "nemotron_reasoning_parse_prompt_safety",
        "nemotron_reasoning_parse_response_safety",
    }
)

# NeMo's built-in rails railstream does not have, and why: named so, not taken for actions.
NEMO_ONLY_RAILS: Mapping[str, str] = {
    "self check facts": (
        "it checks the reply against the chunks NeMo's retrieval found (relevant_chunks), "
        "and railstream has no retrieval"
    ),
    "self check hallucination": (
        "it asks the main model for more replies to compare the reply with, which railstream "
        "does not do"
    ),
    "jailbreak detection heuristics": (
        "it scores perplexity with a language model run in NeMo's process or server"
    ),
    "alignscore check facts": "it needs retrieval and an AlignScore server",
    "activefence moderation on input": "it calls ActiveFence's API, which railstream does not",
    "patronus lynx check output hallucination": "it needs retrieval and Patronus Lynx",
}

# The parameters each built-in takes, and those it cannot do without.
_PARAMETERS = {
    "content safety check input": {"model"},
    "content safety check output": {"model"},
    "topic safety check input": {"model"},
}
_REQUIRED = {"topic safety check input": {"model"}}


@attrs.frozen
class FlowRef:
    """A flow as written (``text``): its ``name`` and its parameters."""

    text: str
    name: str
    parameters: Mapping[str, str] = attrs.field(factory=dict)


def parse_flow(text: str) -> FlowRef:
    """The flow written as ``text``; ``ValueError`` saying what is wrong with it."""
    head, dollar, tail = text.partition("$")
    name = " ".join(head.split())
    parameters: dict[str, str] = {}
    rest = dollar + tail
    while rest.strip():
        rest = rest.lstrip()
        match = _PARAMETER.match(rest)
        if match is None:
            raise ValueError(f"cannot read the flow parameters {rest!r}: write $name=value")
        key = match.group(1)
        value = next(g for g in match.groups()[1:] if g is not None)
        if key in parameters:
            raise ValueError(f"parameter ${key} is given twice")
        parameters[key] = value
        rest = rest[match.end() :]
    if parameters:
        allowed = _PARAMETERS.get(name)
        if name in NEMO_ONLY_RAILS:
            raise ValueError(nemo_only_problem(name))
        if allowed is None:
            raise ValueError(f"flow parameters are for NeMo's built-in rails; {name!r} takes none")
        unknown = sorted(set(parameters) - allowed)
        if unknown:
            raise ValueError(
                f"{name!r} takes ${', $'.join(sorted(allowed))}, not ${', $'.join(unknown)}"
            )
    missing = sorted(_REQUIRED.get(name, set()) - set(parameters))
    if missing:
        raise ValueError(
            f"{name!r} needs ${missing[0]}=<the type of its model in models>, as in NeMo "
            f"({name} $model=topic_control)"
        )
    return FlowRef(text=text, name=name, parameters=parameters)


def nemo_only_problem(name: str) -> str:
    """The one line for a NeMo rail railstream does not have."""
    return (
        f"{name!r} is one of NeMo's built-in rails that railstream does not have: "
        f"{NEMO_ONLY_RAILS[name]}"
    )


def builtin_judge(flow: FlowRef) -> tuple[str, str | None] | None:
    """``(prompt task, model type)`` of the built-in judge ``flow`` names, or None.

    With ``$model=X`` the model is of type X and the task is NeMo's ``<task> $model=X``.
    """
    judge = _JUDGES.get(flow.name)
    if judge is None:
        return None
    task, model_type = judge
    model = flow.parameters.get("model")
    if model is not None:
        return f"{task} $model={model}", model
    return task, model_type
