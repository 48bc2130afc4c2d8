"""One benchmark client run in its own process: ``python benchmarks/client.py '<spec json>'``.

Standalone on purpose: NeMo Guardrails' venv runs it too. It streams ``streams`` replies at
once from the local stamping server (each token's text is the ``time.monotonic_ns()`` it was
sent at) through one system, and prints one JSON line: per stream, the receive-minus-send
latency of every chunk, time to first chunk, when a block was seen and when the stream ended;
for the run, CPU time, wall time and peak RSS.

Systems: ``floor`` (a plain httpx loop), ``railstream``, ``nemo`` (NeMo Guardrails). With
``warmup: n`` each first streams n replies unmeasured (connections, lazy imports, caches);
with ``repeat: n`` the measured streams run n times over, one after the other.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

STAMP = re.compile(r"(\d{6,}) ")
SECRET = re.compile(r"FORBIDDEN")

# When a rail returned a block, stamped in the rail itself (time.monotonic_ns(), the server's
# clock too): what the server wrote after it is what the block failed to stop.
VERDICTS: list[int] = []


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


class Meter:
    """CPU, wall time and RSS of the streaming alone: imports and set-up are not counted.

    Each system starts it just before its first request and stops it after its last, so a
    heavier import (NeMo's, railstream's) never shows as per-token cost, nor its modules as
    memory per stream.
    """

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self.baseline_rss_kib = 0

    def start(self) -> None:
        self.baseline_rss_kib = rss_kib()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall


class Recorder:
    """What one stream saw."""

    def __init__(self, close_after: int | None) -> None:
        self.start = time.monotonic_ns()
        self.latencies: list[int] = []  # per chunk, from its newest token's send
        self.oldest: list[int] = []  # per chunk, from its oldest token's send
        self.first_chunk: int | None = None
        self.tokens = 0
        self.blocked_ns: int | None = None
        self.closed_ns: int | None = None
        self.close_after = close_after

    def chunk(self, text: str) -> bool:
        """Record a chunk; False once the consumer wants no more."""
        now = time.monotonic_ns()
        if '"error"' in text or "I'm sorry" in text:
            self.blocked_ns = self.blocked_ns or now
            return True
        stamps = STAMP.findall(text)
        if not stamps:
            return True
        if self.first_chunk is None:
            self.first_chunk = now - self.start
        self.latencies.append(now - int(stamps[-1]))
        self.oldest.append(now - int(stamps[0]))
        self.tokens += len(stamps)
        if self.close_after is not None and self.tokens >= self.close_after:
            self.closed_ns = time.monotonic_ns()
            return False
        return True

    def result(self) -> dict[str, Any]:
        return {
            "latencies_ns": self.latencies,
            "oldest_ns": self.oldest,
            "first_chunk_ns": self.first_chunk,
            "tokens": self.tokens,
            "blocked_ns": self.blocked_ns,
            "verdict_ns": VERDICTS[0] if VERDICTS else None,
            "closed_ns": self.closed_ns,
            "end_ns": time.monotonic_ns(),
            "error": None,
        }


def failed(exc: BaseException) -> dict[str, Any]:
    return {**Recorder(None).result(), "error": f"{type(exc).__name__}: {exc}"[:200]}


def rails_yaml(spec: dict[str, Any], nemo: bool) -> str:
    params: dict[str, Any] = {"base_url": spec["base_url"], "api_key": "unused"}
    if not nemo:
        # As the floor's client does: a connection per concurrent stream, not the default 100.
        params.update(max_connections=max(100, spec["streams"]))
    doc: dict[str, Any] = {
        "models": [
            {"type": "main", "engine": "openai", "model": spec["model"], "parameters": params}
        ],
        "streaming": True,
    }
    rails = spec.get("rails")
    if rails:
        streaming = {"enabled": True, **{k: v for k, v in rails.items() if k != "rail_ms"}}
        doc["rails"] = {"output": {"flows": ["check no secrets"], "streaming": streaming}}
    elif not nemo:
        doc["models"][0]["parameters"]["max_retries"] = 0
    return json.dumps(doc)


# NeMo Guardrails: an output rail is a Colang flow that runs the action.
NEMO_FLOWS = """
define bot refuse to respond
  "I'm sorry, I can't respond to that."

define flow check no secrets
  $response = execute check_no_secrets
  if $response.is_blocked
    bot refuse to respond
    stop
"""


async def rail_work(text: str, rail_ms: float, sleep: Any) -> bool:
    if rail_ms:
        await sleep(rail_ms / 1000)
    allowed = SECRET.search(text) is None
    if not allowed:
        VERDICTS.append(time.monotonic_ns())
    return allowed


def run_floor(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    import httpx
    import trio

    async def one(client: Any) -> dict[str, Any]:
        record = Recorder(spec.get("close_after"))
        body = {
            "model": spec["model"],
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
        }
        async with client.stream(
            "POST", f"{spec['base_url']}/chat/completions", json=body
        ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    content = choice.get("delta", {}).get("content")
                    if content and not record.chunk(content):
                        return record.result()
        return record.result()

    async def main() -> list[dict[str, Any]]:
        # A connection per concurrent stream; httpx's default keep-alive (20): with one kept
        # per stream, httpcore 1.0's pool rescans every connection for each idle one whenever
        # a response closes (encode/httpcore#1035), which doubled the CPU at 300 streams.
        limits = httpx.Limits(
            max_connections=max(100, spec["streams"]), max_keepalive_connections=20
        )
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            return await _measured_in_trio(spec, meter, lambda: one(client))

    return trio.run(main)


async def _measured_in_trio(
    spec: dict[str, Any], meter: Meter, one: Callable[[], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The warm-up replies, then the measured ones: ``streams`` at once, ``repeat`` times."""
    import trio

    for _ in range(spec.get("warmup", 0)):
        await one()
    results: list[dict[str, Any]] = []

    async def measured() -> None:
        try:
            results.append(await one())
        except Exception as exc:  # counted as a failed request, not as the run's end
            results.append(failed(exc))

    meter.start()
    for _ in range(spec.get("repeat", 1)):
        async with trio.open_nursery() as nursery:
            for _ in range(spec["streams"]):
                nursery.start_soon(measured)
    meter.stop()
    return results


def run_railstream(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    import trio

    from railstream import LLMRails, RailsConfig

    rail_ms = (spec.get("rails") or {}).get("rail_ms", 0)

    async def check_no_secrets(bot_message: str) -> bool:
        return await rail_work(bot_message, rail_ms, trio.sleep)

    async def one(rails: Any) -> dict[str, Any]:
        record = Recorder(spec.get("close_after"))
        async with rails.stream_async(messages=[{"role": "user", "content": "go"}]) as stream:
            async for chunk in stream:
                if not record.chunk(chunk):
                    break
        return record.result()

    async def main() -> list[dict[str, Any]]:
        async with LLMRails(
            RailsConfig.from_content(yaml_content=rails_yaml(spec, nemo=False))
        ) as rails:
            rails.register_action(check_no_secrets)
            return await _measured_in_trio(spec, meter, lambda: one(rails))

    return trio.run(main)


def run_nemo(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    import asyncio

    from nemoguardrails import LLMRails, RailsConfig
    from nemoguardrails.actions.rail_outcome import RailOutcome

    rail_ms = (spec.get("rails") or {}).get("rail_ms", 0)

    async def check_no_secrets(context: dict[str, Any] | None = None, **_: Any) -> Any:
        allowed = await rail_work((context or {}).get("bot_message", ""), rail_ms, asyncio.sleep)
        return RailOutcome.allow() if allowed else RailOutcome.block()

    async def one(rails: Any) -> dict[str, Any]:
        record = Recorder(spec.get("close_after"))
        async for chunk in rails.stream_async(messages=[{"role": "user", "content": "go"}]):
            if not record.chunk(chunk):
                break
        return record.result()

    async def main() -> list[dict[str, Any]]:
        config = RailsConfig.from_content(
            colang_content=NEMO_FLOWS if spec.get("rails") else None,
            yaml_content=rails_yaml(spec, nemo=True),
        )
        rails = LLMRails(config)
        rails.register_action(check_no_secrets, "check_no_secrets")
        for _ in range(spec.get("warmup", 0)):
            await one(rails)
        meter.start()
        results = []
        for _ in range(spec.get("repeat", 1)):
            done = await asyncio.gather(
                *(one(rails) for _ in range(spec["streams"])), return_exceptions=True
            )
            results += [failed(r) if isinstance(r, BaseException) else r for r in done]
        meter.stop()
        return results

    return asyncio.run(main())


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("gc_gen0"):
        # What an application serving many streams may do (railstream server does): young
        # collections less often. Applied to every system alike.
        import gc

        gc.set_threshold(spec["gc_gen0"], *gc.get_threshold()[1:])
    runner = {"floor": run_floor, "railstream": run_railstream, "nemo": run_nemo}[spec["system"]]
    meter = Meter()
    streams = runner(spec, meter)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "cpu_s": meter.cpu,
                "wall_s": meter.wall,
                "baseline_rss_kib": meter.baseline_rss_kib,
                "peak_rss_kib": peak,
                "streams": streams,
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
