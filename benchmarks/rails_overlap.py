"""Overlapping rail checks: ``python -m benchmarks.rails_overlap``.

A 2,000-token reply at 1 ms per token (scripted model), windows 200/50, stream_first false,
one rail that takes 300 ms. Total time to the end of the stream for several
``max_concurrent_checks``, against the generation alone and the target: generation time plus
two rail latencies.
"""

from __future__ import annotations

import argparse
import json
import time

import trio

from railstream import LLMRails, RailsConfig

RAIL_S = 0.3  # set from --rail-ms


async def slow_rail(bot_message: str) -> bool:
    await trio.sleep(RAIL_S)
    return True


def config(tokens: int, checks: int | None) -> RailsConfig:
    reply = " ".join(f"t{i}" for i in range(tokens))
    doc: dict[str, object] = {
        "models": [
            {
                "type": "main",
                "engine": "scripted",
                "parameters": {"responses": [reply], "delay_ms": 1},
            }
        ],
    }
    if checks is not None:
        doc["rails"] = {
            "output": {
                "flows": ["slow rail"],
                "streaming": {
                    "enabled": True,
                    "chunk_size": 200,
                    "context_size": 50,
                    "stream_first": False,
                    "max_concurrent_checks": checks,
                },
            }
        }
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


async def run(rails: LLMRails) -> tuple[float, float]:
    """Seconds to the end of the stream, and to the first released chunk."""
    start = time.perf_counter()
    first = None
    async with rails.stream_async(messages=[{"role": "user", "content": "go"}]) as stream:
        async for _chunk in stream:
            first = first or time.perf_counter() - start
    return time.perf_counter() - start, first or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--checks", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--rail-ms", type=float, default=300)
    args = parser.parse_args()
    global RAIL_S
    RAIL_S = args.rail_ms / 1000

    generation, _ = trio.run(run, LLMRails(config(args.tokens, None)))
    target = generation + 2 * RAIL_S
    print(
        f"{args.tokens} tokens at 1 ms/token, windows 200/50, stream_first false, a {RAIL_S * 1000:.0f} ms rail"
    )
    print(
        f"generation alone: {generation:.2f} s; target: <= {target:.2f} s (generation + 2 rail latencies)"
    )
    print(f"{'max_concurrent_checks':>22} {'total s':>8} {'first chunk s':>14} {'vs target':>10}")
    for checks in args.checks:
        rails = LLMRails(config(args.tokens, checks))
        rails.register_action(slow_rail)
        total, first = trio.run(run, rails)
        verdict = "meets" if total <= target else "misses"
        print(f"{checks:>22} {total:>8.2f} {first:>14.2f} {verdict:>10}")


if __name__ == "__main__":
    main()
