"""The HTTP server under load: ``python -m benchmarks.server [--clients 200] [--requests 2000]``.

`railstream server` runs as its own process with a scripted config (60-token replies, a
regex rail on 200/50 windows, stream_first true); this process keeps ``--clients`` streaming
requests in flight with httpx and reports streamed requests per second and the time to
first content chunk (p50/p90/p99), client-side, over ``--requests`` requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import trio

from tests.server_process import ServerProcess

CONFIG = """
models:
  - type: main
    engine: scripted
    parameters:
      responses: ["{reply}"]
rails:
  output:
    flows: [check no secrets]
    streaming: {{enabled: true, chunk_size: 200, context_size: 50, stream_first: true}}
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url: str, clients: int, requests: int) -> tuple[float, list[float], int]:
    first_chunk: list[float] = []
    failures = 0
    remaining = requests
    body = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            got_first = False
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    failures += 1
                    await response.aread()
                    continue
                async for line in response.aiter_lines():
                    if not got_first and '"content": "' in line and '"role"' not in line:
                        first_chunk.append(time.perf_counter() - start)
                        got_first = True
                    if line == "data: [DONE]":
                        break

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    async with (
        httpx.AsyncClient(timeout=120, limits=limits) as client,
        trio.open_nursery() as nursery,
    ):
        for _ in range(clients):
            nursery.start_soon(client_loop, client)
    return time.perf_counter() - start, first_chunk, failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="railstream-bench-"))
    bench = folder / "bench"
    bench.mkdir()
    (bench / "config.yml").write_text(CONFIG.format(reply=" ".join(f"word{i}" for i in range(60))))
    shutil.copy(
        Path(__file__).resolve().parent.parent / "examples" / "demo" / "actions.py",
        bench / "actions.py",
    )
    server = ServerProcess(folder, "--max-concurrent", str(args.clients * 2))
    try:
        client_cpu = time.process_time()
        wall, first_chunk, failures = trio.run(load, server.url, args.clients, args.requests)
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    ms = [v * 1000 for v in first_chunk]
    print(
        f"{args.requests} streamed requests (60 tokens each, rails on), {args.clients} concurrent clients"
    )
    print(
        f"  streamed requests/s: {args.requests / wall:,.0f}   tokens/s: {args.requests * 60 / wall:,.0f}"
    )
    print(
        f"  time to first chunk ms: p50 {pct(ms, 0.5):.1f}  p90 {pct(ms, 0.9):.1f}  p99 {pct(ms, 0.99):.1f}"
    )
    print(f"  failures: {failures}")
    print(
        f"  CPU: server {server_cpu:.1f} s ({server_cpu / args.requests * 1000:.2f} ms/request), "
        f"client {client_cpu:.1f} s, over {wall:.1f} s on {os.cpu_count()} cores"
    )
    print(
        json.dumps(
            {"rps": args.requests / wall, "ttfc_p99_ms": pct(ms, 0.99), "failures": failures}
        )
    )


if __name__ == "__main__":
    main()
