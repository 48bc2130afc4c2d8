"""The HTTP server under load: ``python -m benchmarks.server [--clients 200] [--requests 2000]``.

`railstream server` runs as its own process with a 60-token reply and a regex rail on 200/50
windows (stream_first true). The model is either railstream's embedded scripted one (the
default) or, with ``--upstream``, a real OpenAI-compatible server in a third process
(``tests/openai_server.py``), so that every token crosses the network twice, as in production.
This process keeps ``--clients`` streaming requests in flight with httpx over ``--requests``
requests and reports:

- how many completed correctly: each stream's text is exactly the reply the model sent, it
  ended with a finish chunk (``stop``), a usage chunk with the expected counts and
  ``data: [DONE]``; every other outcome is counted by kind (HTTP status, transport error,
  wrong text, ...);
- streamed requests per second, time to first content chunk (p50/p90/p99, client-side), and
  the CPU the server, the upstream and the client used.

The whole run stops by itself after ``--timeout`` seconds; what had not finished by then is
counted as ``unfinished at timeout``. All traffic is to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from railstream.stages.generation._base import count_pieces
from tests.helpers import ROOT
from tests.server_process import ServerProcess

TOKENS = 60
PROMPT = "hi"
STREAMING = "streaming: {enabled: true, chunk_size: 200, context_size: 50, stream_first: true}"

SCRIPTED_CONFIG = """
models:
  - type: main
    engine: scripted
    parameters:
      responses: [{reply}]
rails:
  output:
    flows: [check no secrets]
    {streaming}
"""

UPSTREAM_CONFIG = """
models:
  - type: main
    engine: openai
    model: up-model
    parameters:
      base_url: {base_url}
      max_retries: 0
      first_token_timeout_s: 60
      # One upstream connection per concurrent stream: the default pool (100) would queue the
      # rest behind it, which measures the pool, not the server.
      max_connections: {connections}
      max_keepalive_connections: {connections}
rails:
  output:
    flows: [check no secrets]
    {streaming}
"""


@attrs.frozen(kw_only=True)
class Expected:
    """What a correct stream carries."""

    text: str
    usage: Mapping[str, int]


@attrs.define
class Tally:
    """The outcome of every request of a run."""

    correct: int = 0
    failures: collections.Counter[str] = attrs.field(factory=collections.Counter)
    first_chunk_s: list[float] = attrs.field(factory=list)
    examples: dict[str, str] = attrs.field(factory=dict)  # one detail per failure kind
    failed_after_s: list[float] = attrs.field(factory=list)  # of each transport failure
    started_ns: int = 0  # time.monotonic_ns() when the run began
    first_chunk_ns: list[int] = attrs.field(factory=list)  # time.monotonic_ns() of each

    def fail(self, kind: str, detail: str = "") -> None:
        self.failures[kind] += 1
        self.examples.setdefault(kind, detail)


def check_stream(lines: Iterable[str], expected: Expected) -> str | None:
    """None if the SSE ``lines`` of one reply are a correct stream, else what is wrong with it.

    Correct: content deltas whose text is exactly ``expected.text``, then one finish chunk with
    ``finish_reason: stop``, one usage chunk equal to ``expected.usage``, then ``[DONE]`` and
    nothing after it. Any error event, any other finish reason, any line that is not JSON fails.
    """
    text: list[str] = []
    finish: str | None = None
    usage: Any = None
    done = False
    for line in lines:
        if not line.startswith("data: "):
            if line.strip():
                return f"not an SSE data line: {line[:80]!r}"
            continue
        if done:
            return "data after [DONE]"
        data = line[len("data: ") :]
        if data == "[DONE]":
            done = True
            continue
        try:
            event = json.loads(data)
        except ValueError:
            return f"not JSON: {data[:80]!r}"
        if not isinstance(event, dict):
            return f"not a JSON object: {data[:80]!r}"
        if "error" in event:
            return f"error event: {json.dumps(event['error'])[:200]}"
        if event.get("usage") is not None:
            if usage is not None:
                return "two usage chunks"
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if finish is not None:
                return "a chunk after the finish chunk"
            content = (choice.get("delta") or {}).get("content")
            if content:
                text.append(content)
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]
    got = "".join(text)
    if got != expected.text:
        return f"wrong text: {len(got)} chars, expected {len(expected.text)}; got {got[:60]!r}..."
    if finish is None:
        return "no finish chunk"
    if finish != "stop":
        return f"finish_reason: {finish!r}"
    if usage is None:
        return "no usage chunk"
    if usage != dict(expected.usage):
        return f"wrong usage: {usage!r}, expected {dict(expected.usage)!r}"
    if not done:
        return "no [DONE]"
    return None


def failure_kind(problem: str) -> str:
    """A check_stream problem without its details (after the colon), to count by kind."""
    return problem.split(":", 1)[0]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children so far (Linux /proc): a server
    with --workers is its workers."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return own + sum(_cpu_seconds(kid) for kid in kids)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raise_open_files_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard one (children inherit it); returns it.

    Each stream holds a client socket and a server socket, and with --upstream two more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def load(url: str, clients: int, requests: int, expected: Expected, limit_s: float) -> Tally:
    """``requests`` streamed requests, ``clients`` at a time; stops after ``limit_s``."""
    tally = Tally(started_ns=time.monotonic_ns())
    remaining = requests
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def one(client: httpx.AsyncClient) -> None:
        start = time.perf_counter()
        lines: list[str] = []
        first: float | None = None
        first_ns = 0
        try:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread())[:200].decode(errors="replace")
                    tally.fail(f"HTTP {response.status_code}", detail)
                    return
                async for line in response.aiter_lines():
                    if first is None and _has_content(line):
                        first, first_ns = time.perf_counter() - start, time.monotonic_ns()
                    lines.append(line)
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - start
            tally.fail(
                f"transport: {type(exc).__name__}", f"{str(exc)[:200]} after {elapsed:.2f} s"
            )
            tally.failed_after_s.append(elapsed)
            return
        if first is not None:
            tally.first_chunk_s.append(first)
            tally.first_chunk_ns.append(first_ns)
        problem = check_stream(lines, expected)
        if problem is None:
            tally.correct += 1
        else:
            tally.fail(failure_kind(problem), problem)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one(client)

    # One connection per client (keep-alive between its requests), as separate users have.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeouts = httpx.Timeout(limit_s, pool=limit_s)
    with trio.move_on_after(limit_s):
        async with (
            httpx.AsyncClient(timeout=timeouts, limits=limits) as client,
            trio.open_nursery() as nursery,
        ):
            for _ in range(clients):
                nursery.start_soon(client_loop, client)
    unfinished = requests - tally.correct - sum(tally.failures.values())
    if unfinished:
        tally.fail("unfinished at timeout", f"{unfinished} requests")
        tally.failures["unfinished at timeout"] = unfinished
    return tally


def _has_content(line: str) -> bool:
    """A content delta with text (the role chunk's content is empty)."""
    return '"content": "' in line and '"content": ""' not in line


class Upstream:
    """``python -m tests.openai_server`` as a process: ``TOKENS`` tokens per reply, paced."""

    def __init__(self, delay: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.openai_server",
                "--tokens",
                str(TOKENS),
                "--delay",
                str(delay),
            ],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        # A hang guard: it prints its port within a second.
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        port = self.process.stdout.readline().strip() if ready else b""
        if not port:
            self.stop()
            raise RuntimeError("the upstream server did not start")
        self.base_url = f"http://127.0.0.1:{int(port)}/v1"
        self.text = "".join(f"tok{i} " for i in range(TOKENS))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def upstream_timeline(upstream: Upstream, tally: Tally) -> str:
    """When the upstream sent each reply's first and last token, against when the client saw
    its first chunk, in s since the run began (one machine: one monotonic clock).

    It tells a server that is late to forward requests from one that is late to pass tokens on.
    """
    served = httpx.get(upstream.base_url.removesuffix("/v1") + "/_stats", timeout=60).json()
    first = [(s["sent_ns"][0] - tally.started_ns) / 1e9 for s in served if s["sent_ns"]]
    last = [(s["sent_ns"][-1] - tally.started_ns) / 1e9 for s in served if s["sent_ns"]]
    seen = [(ns - tally.started_ns) / 1e9 for ns in tally.first_chunk_ns]

    def line(name: str, values: list[float]) -> str:
        return (
            f"    {name:<34} p50 {pct(values, 0.5):6.2f}  p90 {pct(values, 0.9):6.2f}  "
            f"p99 {pct(values, 0.99):6.2f}  max {max(values, default=float('nan')):6.2f}"
        )

    return "\n".join(
        [
            f"  timeline, s since the run began ({len(served)} requests reached the upstream):",
            line("upstream sent the first token", first),
            line("client received the first chunk", seen),
            line("upstream sent the last token", last),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="streams in flight (200)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (2000)")
    parser.add_argument(
        "--upstream",
        action="store_true",
        help="the model is an OpenAI-compatible server in its own process, not the scripted one",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=20.0,
        help="with --upstream: ms between the upstream's tokens (20, i.e. 50 tokens/s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="the run stops after this many s (300)"
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=float,
        metavar="SECONDS",
        help="passed to the server (its default otherwise: 5)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the server's worker processes (--workers; 1)"
    )
    parser.add_argument("--keep-log", action="store_true", help="print the server log's tail")
    args = parser.parse_args()
    open_files = raise_open_files_limit()
    folder = Path(tempfile.mkdtemp(prefix="railstream-bench-"))
    bench = folder / "bench"
    bench.mkdir()
    shutil.copy(ROOT / "examples" / "demo" / "actions.py", bench / "actions.py")
    upstream: Upstream | None = None
    server: ServerProcess | None = None
    try:
        if args.upstream:
            upstream = Upstream(args.delay_ms / 1000)
            config = UPSTREAM_CONFIG.format(
                base_url=upstream.base_url, connections=args.clients, streaming=STREAMING
            )
            expected = Expected(
                text=upstream.text,
                usage={"prompt_tokens": 7, "completion_tokens": TOKENS, "total_tokens": 7 + TOKENS},
            )
        else:
            reply = " ".join(f"word{i}" for i in range(TOKENS))
            config = SCRIPTED_CONFIG.format(reply=json.dumps(reply), streaming=STREAMING)
            prompt, completion = count_pieces(PROMPT), count_pieces(reply)
            expected = Expected(
                text=reply,
                usage={
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            )
        (bench / "config.yml").write_text(config)
        # Room for every stream at once: the point is to see them all served, not refused.
        server_args = ["--max-concurrent", str(max(512, args.clients * 2))]
        if args.keep_alive_timeout is not None:
            server_args += ["--keep-alive-timeout", str(args.keep_alive_timeout)]
        if args.workers != 1:
            server_args += ["--workers", str(args.workers)]
        server = ServerProcess(folder, *server_args)
        client_cpu = time.process_time()
        start = time.perf_counter()
        tally = trio.run(load, server.url, args.clients, args.requests, expected, args.timeout)
        wall = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(server.process.pid)
        upstream_cpu = _cpu_seconds(upstream.process.pid) if upstream else 0.0
        timeline = upstream_timeline(upstream, tally) if upstream else ""
    finally:
        log = ""
        if server is not None:
            server.stop()
            log = server.log()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(folder, ignore_errors=True)
    ms = [v * 1000 for v in tally.first_chunk_s]
    failed = sum(tally.failures.values())
    model = f"upstream process at {args.delay_ms:g} ms/token" if args.upstream else "scripted model"
    print(
        f"{args.requests} streamed requests ({TOKENS} tokens each, {model}, rails on), "
        f"{args.clients} concurrent clients, open files limit {open_files}"
    )
    print(f"  completed correctly: {tally.correct} of {args.requests}")
    print(
        f"  streamed requests/s: {args.requests / wall:,.0f}   "
        f"tokens/s: {tally.correct * TOKENS / wall:,.0f}"
    )
    print(
        f"  time to first chunk ms: p50 {pct(ms, 0.5):.1f}  p90 {pct(ms, 0.9):.1f}  "
        f"p99 {pct(ms, 0.99):.1f}  (max {max(ms, default=float('nan')):.1f})"
    )
    print(f"  failures: {failed}")
    for kind, count in tally.failures.most_common():
        print(f"    {count:6}  {kind}  (e.g. {tally.examples[kind]})")
    if tally.failed_after_s:
        after = sorted(tally.failed_after_s)
        print(
            f"  transport failures after s: min {after[0]:.2f}  median {pct(after, 0.5):.2f}  "
            f"max {after[-1]:.2f}"
        )
    print(
        f"  CPU: server {server_cpu:.1f} s ({server_cpu / args.requests * 1000:.2f} ms/request), "
        + (f"upstream {upstream_cpu:.1f} s, " if args.upstream else "")
        + f"client {client_cpu:.1f} s, over {wall:.1f} s on {os.cpu_count()} cores"
    )
    if timeline:
        print(timeline)
    warnings = [line for line in log.splitlines() if line.strip()]
    if warnings:
        print(f"  server log: {len(warnings)} lines" + (", the last:" if args.keep_log else ""))
        if args.keep_log:
            for line in warnings[-20:]:
                print(f"    {line}")
    print(
        json.dumps(
            {
                "requests": args.requests,
                "clients": args.clients,
                "correct": tally.correct,
                "rps": args.requests / wall,
                "ttfc_ms": {"p50": pct(ms, 0.5), "p90": pct(ms, 0.9), "p99": pct(ms, 0.99)},
                "failures": dict(tally.failures),
            }
        )
    )
    if tally.correct != args.requests:
        sys.exit(1)


if __name__ == "__main__":
    main()
