"""Shared test helpers: configs built in code, collecting a stream, the hang guard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from railstream import LLMRails, RailsConfig

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"

# Every streaming test runs under trio's autojump clock, so this is virtual time: a test that
# hangs fails after this many (virtual) seconds instead of never ending.
HANG_GUARD_S = 600


def scripted_yaml(
    responses: Sequence[str | Sequence[str]],
    *,
    flows: Sequence[str] = (),
    chunk_size: int = 4,
    context_size: int = 1,
    stream_first: bool = False,
    delay_ms: float = 0,
    parallel: bool = False,
    max_concurrent_checks: int = 1,
    rail_timeout_s: float | None = None,
    report_usage: bool = True,
    extra: str = "",
) -> str:
    """A config.yml on the scripted model (JSON is YAML, so values are written as JSON)."""
    streaming = {
        "enabled": True,
        "chunk_size": chunk_size,
        "context_size": context_size,
        "stream_first": stream_first,
        "max_concurrent_checks": max_concurrent_checks,
        "rail_timeout_s": rail_timeout_s,
    }
    config: dict[str, Any] = {
        "models": [
            {
                "type": "main",
                "engine": "scripted",
                "model": "scripted-test",
                "parameters": {
                    "responses": [r if isinstance(r, str) else list(r) for r in responses],
                    "delay_ms": delay_ms,
                    "report_usage": report_usage,
                },
            }
        ],
        "rails": {"output": {"flows": list(flows), "parallel": parallel, "streaming": streaming}},
    }
    return json.dumps(config) + "\n" + extra


def make_rails(
    responses: Sequence[str | Sequence[str]], actions: dict[str, Any] | None = None, **kw: Any
) -> LLMRails:
    rails = LLMRails(RailsConfig.from_content(yaml_content=scripted_yaml(responses, **kw)))
    for name, fn in (actions or {}).items():
        rails.register_action(fn, name)
    return rails


USER = [{"role": "user", "content": "hello there"}]


async def collect(rails: LLMRails, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("messages", USER)
    async with rails.stream_async(**kwargs) as stream:
        return [chunk async for chunk in stream]


class BatchProvider:
    """A provider that emits exactly the given batches (each after ``delay`` seconds).

    Tests use it where batching itself is under test; it counts what it produced.
    """

    provider_name = "batches"
    model_name = "batch-test"

    def __init__(self, batches: Sequence[Sequence[str]], delay: float = 0.0) -> None:
        self.batches = [list(b) for b in batches]
        self.delay = delay
        self.produced = 0
        self.finished = False

    async def stream(self, request: Any, emit: Any) -> Any:
        import trio

        from railstream.stages.generation import ProviderOutcome

        for batch in self.batches:
            if self.delay:
                await trio.sleep(self.delay)
            self.produced += len(batch)
            await emit(batch)
        self.finished = True
        return ProviderOutcome()

    async def complete(self, request: Any) -> Any:
        raise NotImplementedError("BatchProvider streams only")


class SilentAfter:
    """A model that streams ``tokens`` one by one, then goes silent for ``silence`` seconds.

    It records when it was cancelled: a test of "stops the model at once" must not pass just
    because the model happened to send one more token (that is how a missing cancel hides).
    """

    provider_name = "silent"
    model_name = "silent-test"

    def __init__(self, tokens: Sequence[str], *, delay: float = 0.001, silence: float = 1000):
        self.tokens = list(tokens)
        self.delay = delay
        self.silence = silence
        self.produced = 0
        self.cancelled_at: float | None = None

    async def stream(self, request: Any, emit: Any) -> Any:
        import trio

        from railstream.stages.generation import ProviderOutcome

        try:
            for token in self.tokens:
                await trio.sleep(self.delay)
                self.produced += 1
                await emit((token,))
            await trio.sleep(self.silence)
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            raise
        return ProviderOutcome()

    async def complete(self, request: Any) -> Any:
        raise NotImplementedError("SilentAfter streams only")


def rails_on(provider: Any, actions: dict[str, Any] | None = None, **kw: Any) -> LLMRails:
    """``make_rails``' config, with ``provider`` as the main model."""
    rails = LLMRails(
        RailsConfig.from_content(yaml_content=scripted_yaml(["unused"], **kw)), llm=provider
    )
    for name, fn in (actions or {}).items():
        rails.register_action(fn, name)
    return rails
