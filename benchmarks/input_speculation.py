"""Input rails with and without speculative generation: ``python -m benchmarks.input_speculation``.

The model is the tests' OpenAI-compatible server (tests/openai_server.py) in its own process:
its first token comes ``ttft`` ms after the request (a model's queueing and prefill), then one
token every 5 ms. The input rail is an action taking ``rail`` ms (a judge call's latency). For
each pair, time to first chunk (p50/p90 over ``--runs`` requests) with
``rails.input.speculative_generation`` off (NeMo's order: rail, then model: their sum) and on
(both at once: the longer of the two), and what a blocked request costs each way: the tokens
the model streamed before its stream was closed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from railstream import LLMRails, RailsConfig

ROOT = Path(__file__).resolve().parent.parent
TOKENS = 200
TOKEN_S = 0.005


def config(base_url: str, ttft_ms: float, speculative: bool) -> RailsConfig:
    model = f"bench:tokens={TOKENS}:delay={TOKEN_S}:ttft={ttft_ms / 1000}"
    doc: dict[str, Any] = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": model,
                "parameters": {"base_url": base_url, "api_key": "unused"},
            }
        ],
        "rails": {
            "input": {"flows": ["timed check"], "speculative_generation": speculative},
        },
    }
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


def timed_check(rail_s: float, verdict: bool) -> Any:
    async def timed_check(user_message: str) -> bool:
        await trio.sleep(rail_s)
        return verdict

    return timed_check


async def first_chunk_s(rails: LLMRails) -> float:
    """Seconds to the first released chunk (then the stream is closed: the rest is not timed)."""
    start = time.perf_counter()
    async with rails.stream_async(messages=[{"role": "user", "content": "go"}]) as stream:
        async for _chunk in stream:
            return time.perf_counter() - start
    raise RuntimeError("the stream released nothing")


async def measure(
    base_url: str, ttft_ms: float, rail_ms: float, speculative: bool, runs: int
) -> tuple[list[float], int]:
    """TTFC of ``runs`` passing requests, and the model's tokens in one blocked request."""
    rails = LLMRails(config(base_url, ttft_ms, speculative))
    rails.register_action(timed_check(rail_ms / 1000, True), "timed_check")
    async with rails:
        await first_chunk_s(rails)  # warm: the connection is open for every measured run
        times = [await first_chunk_s(rails) for _ in range(runs)]
    blocked = LLMRails(config(base_url, ttft_ms, speculative))
    blocked.register_action(timed_check(rail_ms / 1000, False), "timed_check")
    async with blocked:
        async with blocked.stream_async(messages=[{"role": "user", "content": "go"}]) as stream:
            async for _chunk in stream:
                pass
        main = [c for c in stream.log.llm_calls if c.task == "general"]
    return times, sum(c.streamed_tokens for c in main)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ttft-ms", type=float, nargs="*", default=[100, 300])
    parser.add_argument("--rail-ms", type=float, nargs="*", default=[100, 300])
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        print(
            f"time to first chunk, ms (p50 / p90 of {args.runs}); a {TOKENS}-token reply at "
            f"{TOKEN_S * 1000:.0f} ms/token; blocked: tokens the model streamed for a blocked request"
        )
        print(
            f"{'model ttft':>10} {'input rail':>10} | {'off p50':>8} {'off p90':>8} "
            f"{'on p50':>8} {'on p90':>8} | {'sum':>5} {'max':>5} | "
            f"{'blocked off':>11} {'blocked on':>10}"
        )
        for ttft in args.ttft_ms:
            for rail in args.rail_ms:
                off, off_tokens = trio.run(measure, base_url, ttft, rail, False, args.runs)
                on, on_tokens = trio.run(measure, base_url, ttft, rail, True, args.runs)
                print(
                    f"{ttft:>10.0f} {rail:>10.0f} | {pct(off, 0.5) * 1000:>8.1f} "
                    f"{pct(off, 0.9) * 1000:>8.1f} {pct(on, 0.5) * 1000:>8.1f} "
                    f"{pct(on, 0.9) * 1000:>8.1f} | {ttft + rail:>5.0f} {max(ttft, rail):>5.0f} | "
                    f"{off_tokens:>11} {on_tokens:>10}"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
