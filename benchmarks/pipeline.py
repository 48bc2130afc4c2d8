"""The pipeline's own cost, with an in-process model (no network): ``python -m benchmarks.pipeline``.

Prints, per configuration (no rails; rails 200/50 with stream_first true and false; 32/8):
- throughput: tokens/s and CPU µs per token for one unpaced stream (batches of 16, as a fast
  server's reads deliver them, and of 1, the worst case);
- latency per chunk at 1 ms per token: receive time minus the time the model emitted the
  chunk's last token (p50/p90/p99), and time to first chunk;
- memory: Python heap per stream with many streams open and their consumers paused.
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

import trio

from railstream import LLMRails, RailsConfig, action
from railstream.stages.generation import ChatRequest, ProviderOutcome

SECRET = re.compile(r"\bsk-[A-Za-z0-9-]{8,}")


@action(blocking=False)  # a regex: it never blocks, so it may run on the event loop
def check_no_secrets(bot_message: str) -> bool:
    return SECRET.search(bot_message) is None


def check_no_secrets_in_a_thread(bot_message: str) -> bool:
    """The same rail as a plain sync action: run in a worker thread (the default)."""
    return SECRET.search(bot_message) is None


class StampingProvider:
    """Emits ``count`` tokens in batches, pacing them, stamping when each batch left."""

    provider_name = "bench"
    model_name = "bench"

    def __init__(self, count: int, batch: int, delay: float, *, stamp: bool = True) -> None:
        self.count, self.batch, self.delay, self.stamp = count, batch, delay, stamp
        self.sent_at: list[int] = []  # perf_counter_ns per token

    async def stream(self, request: ChatRequest, emit: Any) -> ProviderOutcome:
        start = trio.current_time()
        for i in range(0, self.count, self.batch):
            if self.delay:
                await trio.sleep_until(start + (i // self.batch + 1) * self.delay)
            batch = [f"tok{j} " for j in range(i, min(i + self.batch, self.count))]
            if self.stamp:
                now = time.perf_counter_ns()
                self.sent_at.extend([now] * len(batch))
            await emit(batch)
        return ProviderOutcome()

    async def complete(self, request: ChatRequest) -> Any:
        raise NotImplementedError


CONFIGS: dict[str, str | None] = {
    "no rails": None,
    "rails 200/50 stream_first": "{enabled: true, chunk_size: 200, context_size: 50, stream_first: true}",
    "rails 200/50 hold": "{enabled: true, chunk_size: 200, context_size: 50, stream_first: false}",
    "rails 32/8 stream_first": "{enabled: true, chunk_size: 32, context_size: 8, stream_first: true}",
    # The rail as a plain sync function: a worker thread per window (about 90 µs each).
    "rails 32/8 thread": "{enabled: true, chunk_size: 32, context_size: 8, stream_first: true, max_concurrent_checks: 4}",
}
THREADED = CONFIGS["rails 32/8 thread"]


def make_rails(streaming: str | None, provider: StampingProvider) -> LLMRails:
    yaml = ""
    if streaming is not None:
        yaml += "rails: {output: {flows: [check no secrets], streaming: " + streaming + "}}\n"
    rails = LLMRails(RailsConfig.from_content(yaml_content=yaml), llm=provider)
    if streaming == THREADED:
        rails.register_action(check_no_secrets_in_a_thread, "check_no_secrets")
    else:
        rails.register_action(check_no_secrets)
    return rails


MESSAGES = [{"role": "user", "content": "benchmark"}]


async def one_stream(rails: LLMRails, provider: StampingProvider) -> tuple[list[int], int]:
    """Per-chunk latencies (ns) and the number of tokens received."""
    latencies: list[int] = []
    received = 0
    token = re.compile(r"tok\d+ ")
    async with rails.stream_async(messages=MESSAGES) as stream:
        async for chunk in stream:
            now = time.perf_counter_ns()
            assert isinstance(chunk, str)
            received += len(token.findall(chunk))
            latencies.append(now - provider.sent_at[received - 1])
    return latencies, received


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def throughput(streaming: str | None, count: int, batch: int, repeat: int) -> tuple[float, float]:
    """Median tokens/s and CPU µs per token over ``repeat`` runs."""
    rates, cpus = [], []
    for _ in range(repeat):
        provider = StampingProvider(count, batch, 0.0)
        rails = make_rails(streaming, provider)
        cpu, wall = time.process_time(), time.perf_counter()
        _, received = trio.run(one_stream, rails, provider)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert received == count
        rates.append(count / wall)
        cpus.append(cpu / count * 1e6)
    return statistics.median(rates), statistics.median(cpus)


def latency(streaming: str | None, count: int) -> tuple[list[int], float]:
    provider = StampingProvider(count, 1, 0.001)
    rails = make_rails(streaming, provider)

    async def run() -> tuple[list[int], float]:
        start = time.perf_counter_ns()
        first: list[float] = []
        latencies: list[int] = []
        received = 0
        async with rails.stream_async(messages=MESSAGES) as stream:
            async for chunk in stream:
                now = time.perf_counter_ns()
                if not first:
                    first.append((now - start) / 1e6)
                received += str(chunk).count("tok")
                latencies.append(now - provider.sent_at[received - 1])
        return latencies, first[0]

    return trio.run(run)


def memory(streaming: str | None, streams: int) -> float:
    """KiB of Python heap per open, paused stream (tracemalloc: exact, unlike RSS deltas)."""

    async def run() -> float:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        opened = []
        # One facade for all streams, as a server would hold; a long reply, lazily made.
        rails = make_rails(streaming, StampingProvider(2000, 1, 0.0, stamp=False))
        for _ in range(streams):
            stream = rails.stream_async(messages=MESSAGES)
            await stream.__anext__()  # started; the consumer now pauses, the pipeline fills
            opened.append(stream)
        await trio.sleep(0.5)  # every pipeline reaches its backpressure point
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        for stream in opened:
            await stream.aclose()
        return (after - before) / 1024 / streams

    return trio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=50_000, help="tokens per throughput stream")
    parser.add_argument("--repeat", type=int, default=5, help="throughput runs per figure (median)")
    parser.add_argument("--paced", type=int, default=1000, help="tokens in the 1 ms/token stream")
    parser.add_argument("--streams", type=int, default=300, help="concurrent paused streams")
    args = parser.parse_args()

    print(f"throughput: one unpaced stream of {args.tokens} tokens (median of {args.repeat})")
    print(f"{'config':28} {'batch':>5} {'tokens/s':>12} {'CPU µs/token':>13}")
    for name, streaming in CONFIGS.items():
        for batch in (16, 1):
            rate, cpu = throughput(streaming, args.tokens, batch, args.repeat)
            print(f"{name:28} {batch:>5} {rate:>12,.0f} {cpu:>13.2f}")

    print(f"\nlatency per chunk: {args.paced} tokens at 1 ms/token (ms, model emit -> consumer)")
    print(f"{'config':28} {'p50':>8} {'p90':>8} {'p99':>8} {'first chunk':>12} {'chunks':>7}")
    for name, streaming in CONFIGS.items():
        lat, first = latency(streaming, args.paced)
        ms = [v / 1e6 for v in lat]
        print(
            f"{name:28} {pct(ms, 0.5):>8.3f} {pct(ms, 0.9):>8.3f} {pct(ms, 0.99):>8.3f} {first:>12.2f} {len(ms):>7}"
        )

    print(
        f"\nmemory: {args.streams} open streams, consumers paused (KiB of Python heap per stream)"
    )
    for name, streaming in CONFIGS.items():
        print(f"{name:28} {memory(streaming, args.streams):>8.1f}")
    print(
        f"\n(latency and memory: single runs; python {sys.version.split()[0]}, trio {trio.__version__})"
    )


if __name__ == "__main__":
    main()
