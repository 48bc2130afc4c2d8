"""The OpenAI provider's cost against the floor: ``python -m benchmarks.provider``.

A local OpenAI-compatible server (tests/openai_server.py) runs as a separate process and
streams an unpaced reply; this process reads it four ways and reports its own CPU per token:

- floor: a plain httpx loop (aiter_lines, json.loads, collect the content): the limit for
  a Python client;
- provider: railstream's OpenAIProvider alone (SSE decoder, chunk parsing, batching per read);
- stream_async: the whole pipeline, no rails;
- stream_async + rails: windows 200/50, a regex rail, stream_first true.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import trio

from benchmarks.cores import pin
from railstream import LLMRails, RailsConfig, action
from railstream.config_schema import ModelConfig
from railstream.stages.generation import ChatRequest, CollectTokens, HttpClients, OpenAIProvider

SECRET = re.compile(r"\bsk-[A-Za-z0-9-]{8,}")
MESSAGES = [{"role": "user", "content": "benchmark"}]


@action(blocking=False)  # a regex: it never blocks, so it may run on the event loop
def check_no_secrets(bot_message: str) -> bool:
    return SECRET.search(bot_message) is None


async def floor(base_url: str) -> int:
    body = {"model": "bench", "messages": MESSAGES, "stream": True}
    received = 0
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{base_url}/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    received += 1
    return received


async def provider_only(base_url: str) -> int:
    model = ModelConfig(
        type="main", engine="openai", model="bench", parameters={"base_url": base_url}
    )
    clients = HttpClients()
    provider = OpenAIProvider(model=model, clients=clients, environ={})
    emit = CollectTokens()
    await provider.stream(ChatRequest(messages=tuple(MESSAGES)), emit)
    await clients.aclose()
    return len(emit.tokens)


def rails_config(base_url: str, rails: bool) -> RailsConfig:
    yaml = f"models: [{{type: main, engine: openai, model: bench, parameters: {{base_url: '{base_url}'}}}}]\n"
    if rails:
        yaml += "rails: {output: {flows: [check no secrets], streaming: {enabled: true, chunk_size: 200, context_size: 50}}}\n"
    return RailsConfig.from_content(yaml_content=yaml)


def through_pipeline(rails: bool) -> Callable[[str], Awaitable[int]]:
    async def run(base_url: str) -> int:
        async with LLMRails(rails_config(base_url, rails)) as guarded:
            guarded.register_action(check_no_secrets)
            text = []
            async with guarded.stream_async(messages=MESSAGES) as stream:
                async for chunk in stream:
                    text.append(chunk)
        return "".join(text).count("tok")

    return run


READERS: dict[str, Callable[[str], Awaitable[int]]] = {
    "floor (plain httpx loop)": floor,
    "provider alone": provider_only,
    "stream_async, no rails": through_pipeline(False),
    "stream_async, rails 200/50": through_pipeline(True),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # The server on one core, this process on the other (where the machine has two), so the
    # two never take turns on one core and the figures are this process's alone.
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--tokens", str(args.tokens)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin(0),
    )
    pin(1)()
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
        print(
            f"{args.tokens} unpaced tokens from a local server process; client CPU, median of"
            f" {args.repeat} rounds (each round runs every reader once, so drift in this VM's"
            " speed touches all alike; x floor is the median of each round's ratio)"
        )
        print(f"{'reader':30} {'tokens/s':>12} {'CPU µs/token':>13} {'x floor':>8}")
        rates: dict[str, list[float]] = {name: [] for name in READERS}
        cpus: dict[str, list[float]] = {name: [] for name in READERS}
        for _ in range(args.repeat):
            for name, reader in READERS.items():
                cpu, wall = time.process_time(), time.perf_counter()
                received = trio.run(reader, base_url)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                assert received == args.tokens, (name, received)
                rates[name].append(received / wall)
                cpus[name].append(cpu / received * 1e6)
        floor_cpus = cpus[next(iter(READERS))]
        for name in READERS:
            ratio = statistics.median(c / f for c, f in zip(cpus[name], floor_cpus, strict=True))
            print(
                f"{name:30} {statistics.median(rates[name]):>12,.0f}"
                f" {statistics.median(cpus[name]):>13.2f} {ratio:>8.2f}"
            )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
