"""OpenTelemetry traces (issue 16): the span tree of a blocked stream, through OpenTelemetry's
SDK and its in-memory exporter; the model is the tests' OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from railstream import LLMRails, RailsConfig

from .helpers import HANG_GUARD_S
from .openai_server import FakeOpenAI, Script


def config(base_url: str) -> RailsConfig:
    parameters = {"base_url": base_url, "api_key": "sk-test"}
    doc = {
        "models": [
            {"type": "main", "engine": "openai", "model": "main-model", "parameters": parameters},
            {
                "type": "self_check_output",
                "engine": "openai",
                "model": "judge-model",
                "parameters": parameters,
            },
        ],
        "rails": {
            "input": {"flows": ["check user message"]},
            "output": {
                "flows": ["self check output"],
                "streaming": {"enabled": True, "chunk_size": 3, "context_size": 0},
            },
        },
        "prompts": [{"task": "self_check_output", "content": "Block {{ bot_response }}?"}],
    }
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


async def test_a_blocked_streams_spans_are_a_tree_of_rails_and_llm_calls(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The stream's span is a child of the application's; under it the input rail's run, the
    main call (gen_ai attributes, its usage) and each output rail run, with the judge's call
    under the run it judged; the blocking run and the stream say so."""
    provider, exporter = spans
    rails = LLMRails(config(server.base_url), tracer_provider=provider)
    rails.register_action(lambda user_message: True, "check_user_message")
    # The main reply is two windows of 3; the judge passes the first and blocks the second.
    server.script(Script(tokens=["one ", "two ", "three ", "four ", "five ", "six "]))

    def judge(body: dict[str, Any]) -> Script | None:
        if body["model"] != "judge-model":
            return None
        return Script(tokens=["Yes" if "four" in body["messages"][0]["content"] else "No"])

    server.responder = judge
    tracer = provider.get_tracer("the application")
    with tracer.start_as_current_span("handle request") as app_span:
        # Asked for in the application's span, read after it: the span it was asked in is
        # its parent, wherever it is read.
        stream = rails.stream_async(messages=[{"role": "user", "content": "hi"}])
    with trio.fail_after(HANG_GUARD_S):
        async with stream:
            chunks = [c async for c in stream]
    await rails.aclose()
    assert json.loads(chunks[-1])["error"]["param"] == "self check output"

    finished = {s.name: s for s in exporter.get_finished_spans()}
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}

    def parent(span: Any) -> str:
        return by_id[span.parent.span_id].name

    stream_span = finished["railstream.stream"]
    assert stream_span.parent.span_id == app_span.get_span_context().span_id
    assert stream_span.attributes["railstream.stopped_by"] == "self check output"
    rails_runs = [s for s in exporter.get_finished_spans() if s.name.startswith("rail ")]
    assert sorted(
        (
            s.attributes["railstream.rail.side"],
            s.attributes["railstream.rail.window_index"],
            s.attributes["railstream.rail.verdict"],
        )
        for s in rails_runs
    ) == [("input", 0, "pass"), ("output", 0, "pass"), ("output", 1, "block")]
    assert all(parent(s) == "railstream.stream" for s in rails_runs)
    main = finished["chat main-model"]
    assert parent(main) == "railstream.stream"
    assert main.kind is trace.SpanKind.CLIENT
    assert main.attributes["gen_ai.operation.name"] == "chat"
    assert main.attributes["gen_ai.request.model"] == "main-model"
    assert main.attributes["railstream.task"] == "general"
    judges = [s for s in exporter.get_finished_spans() if s.name == "chat judge-model"]
    assert len(judges) == 2
    assert {by_id[j.parent.span_id].attributes["railstream.rail.window_index"] for j in judges} == {
        0,
        1,
    }
    assert all(j.attributes["gen_ai.usage.input_tokens"] > 0 for j in judges)
    for span in exporter.get_finished_spans():  # railstream's spans nest as the work did
        outer = by_id.get(span.parent.span_id) if span.parent is not None else None
        if outer is not None and outer.name != "handle request":
            assert outer.start_time <= span.start_time <= span.end_time <= outer.end_time


async def test_no_spans_are_made_without_a_tracer_provider(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    """The global provider is OpenTelemetry's no-op one here: nothing is recorded, and the
    stream is unaffected."""
    rails = LLMRails(config(server.base_url))
    rails.register_action(lambda user_message: True, "check_user_message")
    server.script(Script(tokens=["fine "]), Script(tokens=["No"]))
    assert not trace.get_tracer("probe").start_span("probe").is_recording()
    with trio.fail_after(HANG_GUARD_S):
        chunks = [c async for c in rails.stream_async(messages=[{"role": "user", "content": "hi"}])]
    await rails.aclose()
    assert chunks == ["fine "]


@pytest.mark.parametrize(
    ("tracing", "spans_made"),
    [
        (None, True),
        ({"enabled": True, "adapters": [{"name": "OpenTelemetry"}]}, True),
        ({"enabled": False}, False),
        ({}, False),
    ],
    ids=["no-key", "enabled", "disabled", "nemo-default-off"],
)
async def test_nemos_tracing_enabled_turns_a_configs_spans_on_or_off(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    tracing: dict[str, Any] | None,
    spans_made: bool,
) -> None:
    """NeMo's ``tracing.enabled`` (false by default, as in NeMo) decides for its config;
    without the key, spans are made whenever there is a provider. Adapters are NeMo's: not
    read, with a warning."""
    import warnings

    provider, exporter = spans
    yaml = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "main-model",
                "parameters": {"base_url": server.base_url, "api_key": "sk-test"},
            }
        ],
        **({"tracing": tracing} if tracing is not None else {}),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = RailsConfig.from_content(yaml_content=json.dumps(yaml))
    assert [("adapters" in str(w.message)) for w in caught] == (
        [True] if tracing and "adapters" in tracing else []
    )
    rails = LLMRails(loaded, tracer_provider=provider)
    server.script(Script(tokens=["fine "]))
    with trio.fail_after(HANG_GUARD_S):
        assert [c async for c in rails.stream_async(messages=[{"role": "user", "content": "hi"}])]
    await rails.aclose()
    made = [s.name for s in exporter.get_finished_spans()]
    assert ("railstream.stream" in made) is spans_made
