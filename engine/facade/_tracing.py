"""OpenTelemetry traces of each call: a span per stream, a child span per rail run and per LLM
call (a judge's under its rail run), with the GenAI semantic conventions' ``gen_ai.*``
attributes for the model calls.

Only ``opentelemetry-api`` is used (``pip install 'railstream[tracing]'``), and nothing is
recorded unless the application configured a tracer provider (the SDK, an exporter). The spans
are made when the call ends, from its log, with the times the log recorded: the pipeline's
per-token path never touches OpenTelemetry. The stream's span is a child of the span that was
current when the call started (an application's request span, say).
"""

from __future__ import annotations

from typing import Any

from railstream.stages import UsageLedger

__all__ = ["Tracer", "tracing_available"]

_NS = 1_000_000_000


def tracing_available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


class Tracer:
    """Turns a finished call's log into spans (``tracer_provider``: the global one if None)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer("railstream", tracer_provider=tracer_provider)

    def current_context(self) -> Any:
        """The caller's context, taken when a call starts: its span is the stream's parent."""
        from opentelemetry import context

        return context.get_current()

    def record(self, ledger: UsageLedger, parent: Any, attributes: dict[str, Any]) -> None:
        """The spans of one finished call."""
        trace = self._trace
        runs = ledger.rail_runs
        # A judge's call belongs to its rail's run on its window; the main call to the stream.
        index = {(run.action, run.window_index): i for i, run in enumerate(runs)}
        owned: list[list[Any]] = [[] for _ in runs]
        loose: list[Any] = []
        for call in ledger.llm_calls:
            owner = (
                index.get((call.task, call.window_index)) if call.window_index is not None else None
            )
            (owned[owner] if owner is not None else loose).append(call)
        # The log's times come from two clocks (wall-clock starts, durations on trio's): a
        # parent's span is widened to hold its children's, so the tree nests as it ran.
        bounds = [
            (
                min([run.started_at, *(c.started_at for c in calls)]),
                max([run.finished_at, *(c.finished_at for c in calls)]),
            )
            for run, calls in zip(runs, owned, strict=True)
        ]
        edges = bounds + [(c.started_at, c.finished_at) for c in loose]
        if not edges:
            return
        stopped = next((r for r in runs if r.verdict != "pass"), None)
        stream_attributes = {k: v for k, v in attributes.items() if v is not None}
        if stopped is not None:
            stream_attributes["railstream.stopped_by"] = stopped.rail
            stream_attributes["railstream.stopped_verdict"] = stopped.verdict
        stream = self._tracer.start_span(
            "railstream.stream",
            context=parent,
            start_time=_ns(min(e[0] for e in edges)),
            attributes=stream_attributes,
        )
        if not stream.is_recording():
            return  # no tracer provider: nothing to make
        if stopped is not None and stopped.verdict == "error":
            stream.set_status(trace.Status(trace.StatusCode.ERROR, stopped.reason or "rail failed"))
        in_stream = trace.set_span_in_context(stream)
        for run, calls, (began, ended) in zip(runs, owned, bounds, strict=True):
            span = self._tracer.start_span(
                f"rail {run.rail}",
                context=in_stream,
                start_time=_ns(began),
                attributes={
                    "railstream.rail.name": run.rail,
                    "railstream.rail.action": run.action,
                    "railstream.rail.side": run.side,
                    "railstream.rail.window_index": run.window_index,
                    "railstream.rail.verdict": run.verdict,
                    **({"railstream.rail.reason": run.reason} if run.reason else {}),
                },
            )
            if run.verdict == "error":
                span.set_status(trace.Status(trace.StatusCode.ERROR, run.reason or ""))
            self._calls(calls, trace.set_span_in_context(span))
            span.end(end_time=_ns(ended))
        self._calls(loose, in_stream)
        stream.end(end_time=_ns(max(e[1] for e in edges)))

    def _calls(self, calls: list[Any], context: Any) -> None:
        trace = self._trace
        for call in calls:
            span = self._tracer.start_span(
                f"chat {call.model}" if call.model else "chat",
                context=context,
                kind=trace.SpanKind.CLIENT,
                start_time=_ns(call.started_at),
                attributes=_gen_ai(call),
            )
            if call.status == "failed":
                span.set_status(trace.Status(trace.StatusCode.ERROR, "the call failed"))
            span.end(end_time=_ns(call.finished_at))


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def _gen_ai(call: Any) -> dict[str, Any]:
    """The GenAI semantic conventions' attributes of one LLM call (counts only when known)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": call.provider,
        "railstream.task": call.task,
        "railstream.call.status": call.status,
        "railstream.streamed_tokens": call.streamed_tokens,
    }
    if call.model:
        attributes["gen_ai.request.model"] = call.model
    usage = call.usage
    if usage.prompt_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
    if usage.completion_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    if call.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = (call.finish_reason,)
    if call.time_to_first_token is not None:
        attributes["railstream.time_to_first_token_s"] = call.time_to_first_token
    return attributes
