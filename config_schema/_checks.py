"""The rules that span fields of a config, checked once it has its shape: models, flows and
the prompts and models they need, timeouts, the blocklist, prompts, request parameters.

Each problem is a ``(path, problem)`` pair; the loader places it at its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ._converter import Path
from ._engines import SUPPORTED_ENGINES, engine_parameter_problems
from ._flows import (
    HTTP_RAILS,
    NEMO_ONLY_RAILS,
    OUTPUT_PARSERS,
    builtin_judge,
    nemo_only_problem,
    parse_flow,
)
from ._nemo_compat import OPENAI_COMPATIBLE

if TYPE_CHECKING:  # the models import the loader, which imports this module
    from ._models import RailsConfig

__all__ = ["semantic_problems"]

_PROMPT_MESSAGE_TYPES = frozenset({"system", "user", "assistant", "bot"})


def _timeout_problems(
    base: Path,
    default: float | None,
    per_flow: Mapping[str, float],
    flows: Sequence[str],
    side: str,
) -> Iterator[tuple[Path, str]]:
    """``rail_timeout_s`` and ``rail_timeouts_s`` of one side's rails."""
    if default is not None and default <= 0:
        yield (*base, "rail_timeout_s"), f"must be > 0 (or null for none), got {default}"
    for flow, seconds in per_flow.items():
        if flow not in flows:
            yield (*base, "rail_timeouts_s", flow), f"{flow!r} is not one of rails.{side}.flows"
        elif seconds <= 0:
            yield (*base, "rail_timeouts_s", flow), f"must be > 0, got {seconds}"


def _flow_problems(
    config: RailsConfig, prompt_tasks: list[str], side: str, flows: Sequence[str]
) -> Iterator[tuple[Path, str]]:
    """One side's flows: named, listed once, with the prompt and model a built-in needs."""
    seen: set[str] = set()
    for i, flow in enumerate(flows):
        where = ("rails", side, "flows", i)
        if not flow.strip():
            yield where, "a flow name must not be empty"
        elif flow in seen:
            yield where, f"flow {flow!r} is listed twice"
        seen.add(flow)
        try:
            ref = parse_flow(flow)
        except ValueError as exc:
            yield where, str(exc)
            continue
        if ref.name.replace(" ", "_") in config.actions:
            continue  # the folder's own action serves it (actions.py)
        if ref.name in NEMO_ONLY_RAILS and not ref.parameters:
            yield where, nemo_only_problem(ref.name)
            continue
        if ref.name in HTTP_RAILS:
            yield from _http_rail_problems(config, ref.name, side, where)
            continue
        judge = builtin_judge(ref)
        if judge is None:
            continue
        task, model_type = judge
        if not ref.name.endswith(side):
            yield where, f"{ref.name!r} is an {ref.name.rsplit(' ', 1)[-1]} rail, not an {side} one"
        model = (
            config.model(model_type)
            if model_type is not None
            else config.model(task) or config.model("main")
        )
        if task not in prompt_tasks:
            yield where, f"flow {flow!r} needs a prompt with task {task!r} in prompts"
        elif config.prompt(task, model) is None:
            named = (
                f"{(*model.nemo_engines, model.engine)[0]}/{model.model}"
                if model is not None
                else "no model"
            )
            yield (
                where,
                f"flow {flow!r}: no prompt for task {task!r} is for its model ({named}): "
                "each names other models",
            )
        if model_type is not None and model is None:
            yield where, f"flow {flow!r} needs a model of type {model_type!r} in models"


def _http_rail_problems(
    config: RailsConfig, name: str, side: str, where: Path
) -> Iterator[tuple[Path, str]]:
    """A built-in that asks an endpoint: on its side, with the endpoint configured."""
    if HTTP_RAILS[name] != side:
        yield where, f"{name!r} is an {HTTP_RAILS[name]} rail, not an {side} one"
    settings = config.rails.config.jailbreak_detection
    if not (settings.nim_base_url or settings.server_endpoint):
        yield (
            where,
            f"flow {name!r} needs rails.config.jailbreak_detection.nim_base_url (NemoGuard "
            "JailbreakDetect) or .server_endpoint (NeMo's jailbreak detection server): "
            "railstream does not run NeMo's in-process model",
        )


def semantic_problems(config: RailsConfig, prompt_tasks: list[str]) -> Iterator[tuple[Path, str]]:
    """Rules that span fields, checked once the config has its shape."""
    seen_types: set[str] = set()
    for i, model in enumerate(config.models):
        if model.type in seen_types:
            yield ("models", i, "type"), f"a model of type {model.type!r} is already defined"
        seen_types.add(model.type)
        if model.engine not in SUPPORTED_ENGINES:
            supported = ", ".join(sorted((*SUPPORTED_ENGINES, *OPENAI_COMPATIBLE)))
            yield (
                ("models", i, "engine"),
                f"unknown engine {model.engine!r} (supported: {supported})",
            )
        for sub, problem in engine_parameter_problems(model.engine, model.parameters):
            yield ("models", i, "parameters", *sub), problem
        if model.engine == "huggingface_pipeline" and not model.model:
            yield (
                ("models", i, "model"),
                "required for engine huggingface_pipeline: a local model path",
            )
        if model.engine == "openai" and not model.model:
            yield (
                ("models", i, "model"),
                "required for engine openai: the model name the server serves",
            )

    for i, instruction in enumerate(config.instructions):
        if instruction.type != "general":
            yield (
                ("instructions", i, "type"),
                f"unknown instruction type {instruction.type!r} (the one NeMo defines is general)",
            )

    policy = config.request_parameters
    for name in policy.max:
        if policy.allow is not None and name not in policy.allow:
            yield (
                ("request_parameters", "max", name),
                "is not in request_parameters.allow: a bound on a parameter no request may set",
            )

    output = config.rails.output
    streaming = output.streaming
    base = ("rails", "output", "streaming")
    if streaming.chunk_size < 1:
        yield (*base, "chunk_size"), f"must be >= 1, got {streaming.chunk_size}"
    elif not 0 <= streaming.context_size < streaming.chunk_size:
        yield (
            (*base, "context_size"),
            (
                f"must be >= 0 and < chunk_size ({streaming.chunk_size}), got {streaming.context_size}"
            ),
        )
    if streaming.max_concurrent_checks < 1:
        yield (
            (*base, "max_concurrent_checks"),
            f"must be >= 1, got {streaming.max_concurrent_checks}",
        )

    yield from _timeout_problems(
        base, streaming.rail_timeout_s, streaming.rail_timeouts_s, output.flows, "output"
    )
    inputs = config.rails.input
    yield from _timeout_problems(
        ("rails", "input"), inputs.rail_timeout_s, inputs.rail_timeouts_s, inputs.flows, "input"
    )
    yield from _flow_problems(config, prompt_tasks, "input", inputs.flows)
    blocklist = output.blocklist
    for j, pattern in enumerate(blocklist.patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            yield (
                ("rails", "output", "blocklist", "patterns", j),
                f"not a valid regular expression: {exc}",
            )
    for j, word in enumerate(blocklist.words):
        if not word.strip():
            yield ("rails", "output", "blocklist", "words", j), "a blocked word must not be empty"

    yield from _flow_problems(config, prompt_tasks, "output", output.flows)
    for i, flow in enumerate(output.flows):
        if flow == "blocklist check output" and not (
            output.blocklist.words or output.blocklist.patterns
        ):
            yield (
                ("rails", "output", "flows", i),
                "flow 'blocklist check output' needs rails.output.blocklist words or patterns",
            )

    for i, prompt in enumerate(config.prompts):
        if prompt.output_parser is not None and prompt.output_parser not in OUTPUT_PARSERS:
            yield (
                ("prompts", i, "output_parser"),
                f"unknown output parser {prompt.output_parser!r} "
                f"(railstream reads {', '.join(sorted(OUTPUT_PARSERS))})",
            )
        if prompt.max_tokens is not None and prompt.max_tokens < 1:
            yield ("prompts", i, "max_tokens"), f"must be >= 1, got {prompt.max_tokens}"
        if (prompt.content is None) == (prompt.messages is None):
            yield ("prompts", i), "give the prompt as content or as messages (one of the two)"
        for j, message in enumerate(prompt.messages or ()):
            if message.type not in _PROMPT_MESSAGE_TYPES:
                yield (
                    ("prompts", i, "messages", j, "type"),
                    f"unknown message type {message.type!r} (NeMo's are system, user, "
                    "assistant and bot)",
                )
        if prompt.models is not None and not prompt.models:
            yield ("prompts", i, "models"), "must name at least one model (or be left out)"

    # Several prompts may serve one task for different models; the same task for the same
    # models twice is a mistake (the second could never be picked).
    seen_tasks: set[tuple[str, tuple[str, ...] | None]] = set()
    for i, prompt in enumerate(config.prompts):
        key = (prompt.task, prompt.models)
        if key in seen_tasks:
            for_models = f" for models {list(prompt.models)}" if prompt.models else ""
            yield (
                ("prompts", i, "task"),
                f"a prompt for task {prompt.task!r}{for_models} is already defined",
            )
        seen_tasks.add(key)
