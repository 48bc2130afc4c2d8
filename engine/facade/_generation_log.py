"""The generation log and response in NeMo Guardrails' shape, and the call options.

``options={"log": {"llm_calls": True, "activated_rails": True}}`` asks for them, as in NeMo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import cattrs

from railstream.config_schema import make_converter, parse_flow, structure_problems
from railstream.stages import InvalidRequestError, LLMCall, RailRun, UsageLedger

__all__ = [
    "ActivatedRail",
    "ExecutedAction",
    "ExplainInfo",
    "GenerationLog",
    "GenerationLogOptions",
    "GenerationOptions",
    "GenerationResponse",
    "GenerationStats",
    "LLMCallInfo",
    "parse_options",
]


@attrs.frozen(kw_only=True)
class GenerationLogOptions:
    activated_rails: bool = False
    llm_calls: bool = False
    # NeMo's Colang events and history: railstream runs no Colang, so they are empty.
    internal_events: bool = False
    colang_history: bool = False


@attrs.frozen(kw_only=True)
class GenerationOptions:
    """What a caller may ask of one call: the log, model parameters for this call, and
    (``output_vars``: True, or the names) the context variables at its end."""

    log: GenerationLogOptions = attrs.field(factory=GenerationLogOptions)
    llm_params: Mapping[str, Any] = attrs.field(factory=dict)
    output_vars: bool | tuple[str, ...] | None = None


_OPTIONS = make_converter()


def _output_vars(value: object, _: object) -> bool | tuple[str, ...] | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected true, false or a list of context variable names")


_OPTIONS.register_structure_hook(bool | tuple[str, ...] | None, _output_vars)

# NeMo's options that railstream refuses, and why (an unknown key is refused too).
_NEMO_ONLY_OPTIONS = {
    "rails": (
        "railstream applies every rail of the config to every call; a call cannot turn rails "
        "off (use a config without them)"
    ),
    "llm_output": "railstream does not return the provider's raw output; see log.llm_calls",
}


def parse_options(
    options: GenerationOptions | Mapping[str, Any] | None,
) -> GenerationOptions | None:
    """Options from a dict (NeMo's form) or an instance; an unknown key is an error."""
    if options is None or isinstance(options, GenerationOptions):
        return options
    if not isinstance(options, Mapping):
        raise InvalidRequestError(f"options: expected a dict, got {type(options).__name__}")
    for key, why in _NEMO_ONLY_OPTIONS.items():
        if key in options:
            raise InvalidRequestError(f"options.{key}: {why}", param=f"options.{key}")
    try:
        return _OPTIONS.structure(dict(options), GenerationOptions)
    except cattrs.BaseValidationError as exc:
        lines = []
        for path, problem in structure_problems(exc):
            where = ".".join(str(p) for p in ("options", *path))
            lines.append(f"{where}: {problem}")
        raise InvalidRequestError("; ".join(lines)) from None


@attrs.frozen(kw_only=True)
class LLMCallInfo:
    """One LLM call, as NeMo's log shows it (plus railstream's status and timing)."""

    task: str
    llm_model_name: str | None
    llm_provider_name: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    started_at: float
    finished_at: float
    duration: float
    time_to_first_token: float | None
    streamed_tokens: int
    status: str
    finish_reason: str | None = None
    prompt: str | None = None
    completion: str | None = None

    @classmethod
    def from_record(cls, call: LLMCall) -> LLMCallInfo:
        return cls(
            task=call.task,
            llm_model_name=call.model,
            llm_provider_name=call.provider,
            prompt_tokens=call.usage.prompt_tokens,
            completion_tokens=call.usage.completion_tokens,
            total_tokens=call.usage.total_tokens,
            started_at=call.started_at,
            finished_at=call.finished_at,
            duration=call.duration,
            time_to_first_token=call.time_to_first_token,
            streamed_tokens=call.streamed_tokens,
            status=call.status,
            finish_reason=call.finish_reason,
            prompt=call.prompt,
            completion=call.completion,
        )


@attrs.frozen(kw_only=True)
class ExecutedAction:
    action_name: str
    action_params: Mapping[str, Any]
    return_value: Any
    llm_calls: list[LLMCallInfo]
    started_at: float
    finished_at: float
    duration: float


@attrs.frozen(kw_only=True)
class ActivatedRail:
    """One output rail run on one window (``additional_info`` says which window)."""

    type: str
    name: str
    decisions: list[str]
    executed_actions: list[ExecutedAction]
    stop: bool
    additional_info: Mapping[str, Any]
    started_at: float
    finished_at: float
    duration: float

    @classmethod
    def from_record(cls, run: RailRun, llm_calls: list[LLMCallInfo]) -> ActivatedRail:
        stop = run.verdict in ("block", "error")  # a cancelled run stopped nothing
        executed = ExecutedAction(
            action_name=run.action,
            action_params=_action_params(run.rail),
            return_value=run.return_value,
            llm_calls=llm_calls,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration=run.duration,
        )
        return cls(
            type=run.side,
            name=run.rail,
            # As NeMo records a rail that stops the reply: it refuses, then stops.
            decisions=[
                f"execute {run.action}",
                *(["refuse to respond", "stop"] if stop else []),
            ],
            executed_actions=[executed],
            stop=stop,
            additional_info={
                "window_index": run.window_index,
                "verdict": run.verdict,
                "reason": run.reason,
            },
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration=run.duration,
        )


def _action_params(flow: str) -> dict[str, Any]:
    """The flow's $parameters as NeMo passes them to the action ($model is model_name)."""
    try:
        parameters = parse_flow(flow).parameters
    except ValueError:
        return {}
    return {("model_name" if k == "model" else k): v for k, v in parameters.items()}


@attrs.frozen(kw_only=True)
class GenerationStats:
    llm_calls_count: int
    llm_calls_duration: float
    llm_calls_total_prompt_tokens: int | None
    llm_calls_total_completion_tokens: int | None
    llm_calls_total_tokens: int | None
    output_rails_duration: float
    input_rails_duration: float = 0.0


def _total(values: list[int | None]) -> int | None:
    # A sum over calls of which one has no count is unknown, never a made-up number.
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


@attrs.frozen(kw_only=True)
class GenerationLog:
    activated_rails: list[ActivatedRail] = attrs.field(factory=list)
    llm_calls: list[LLMCallInfo] = attrs.field(factory=list)
    stats: GenerationStats | None = None
    # NeMo's Colang events and history, when asked: railstream has none to show.
    internal_events: list[dict[str, Any]] = attrs.field(factory=list)
    colang_history: str = ""

    @classmethod
    def from_ledger(
        cls, ledger: UsageLedger, options: GenerationLogOptions | None = None
    ) -> GenerationLog:
        calls = [LLMCallInfo.from_record(c) for c in ledger.llm_calls]
        # A judge call belongs to the rail run of its task on its window.
        judged: dict[tuple[str, int | None], list[LLMCallInfo]] = {}
        for call, info in zip(ledger.llm_calls, calls, strict=True):
            judged.setdefault((call.task, call.window_index), []).append(info)
        rails = [
            ActivatedRail.from_record(run, judged.get((run.action, run.window_index), []))
            for run in ledger.rail_runs
        ]
        stats = GenerationStats(
            llm_calls_count=len(calls),
            llm_calls_duration=sum(c.duration for c in calls),
            llm_calls_total_prompt_tokens=_total([c.prompt_tokens for c in calls]),
            llm_calls_total_completion_tokens=_total([c.completion_tokens for c in calls]),
            llm_calls_total_tokens=_total([c.total_tokens for c in calls]),
            output_rails_duration=sum(r.duration for r in ledger.rail_runs if r.side == "output"),
            input_rails_duration=sum(r.duration for r in ledger.rail_runs if r.side == "input"),
        )
        if options is None:
            return cls(activated_rails=rails, llm_calls=calls, stats=stats)
        return cls(
            activated_rails=rails if options.activated_rails else [],
            llm_calls=calls if options.llm_calls else [],
            stats=stats,
        )


@attrs.define(kw_only=True)
class ExplainInfo:
    """``rails.explain()``: the LLM calls of the facade's last call, as NeMo's shows them."""

    llm_calls: list[LLMCallInfo] = attrs.field(factory=list)
    # NeMo's Colang history of the conversation; railstream runs no Colang.
    colang_history: str = ""

    def llm_calls_summary(self) -> str:
        """NeMo's summary: the calls, their time and their tokens."""
        if not self.llm_calls:
            return "No LLM calls were made."
        total_time = sum(c.duration for c in self.llm_calls)
        lines = [
            f"Summary: {len(self.llm_calls)} LLM call(s) took {total_time:.2f} seconds"
            f"{_and_used(self.llm_calls)}.",
            "",
        ]
        for i, call in enumerate(self.llm_calls, 1):
            lines.append(
                f"{i}. Task `{call.task}` took {call.duration:.2f} seconds{_and_used([call])}."
            )
        return "\n".join(lines)

    def print_llm_calls_summary(self) -> None:
        print(self.llm_calls_summary())


def _and_used(calls: list[LLMCallInfo]) -> str:
    # A provider that reports no usage: no count is made up.
    totals = [c.total_tokens for c in calls]
    if any(t is None for t in totals):
        return ""
    return f" and used {sum(t for t in totals if t is not None)} tokens"


@attrs.frozen(kw_only=True)
class GenerationResponse:
    """``generate_async`` with options: the reply messages and the log."""

    # The assistant message in a list for messages=, the reply's text for prompt= (as NeMo).
    response: list[dict[str, Any]] | str
    log: GenerationLog | None = None
    # With options output_vars: the context variables at the end of the call.
    output_data: dict[str, Any] | None = None
