"""What the operator of `railstream server` sees (issue 16): one log line per request with its
outcome and never a key nor the text, and Prometheus metrics at ``/metrics`` that count a block
under its rail. The real server (a subprocess) and its real upstream (the tests'
OpenAI-compatible server) on 127.0.0.1; real time."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from railstream.runtime._pipeline import CHANNEL_CAPACITY

from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess

TOKENS_ROOM = CHANNEL_CAPACITY["tokens"]
KEY = "sk-test-9f8e7d6c5b4a39281706"
SECRET_TEXT = "the launch code is"
CONFIG = """
models:
  - type: main
    engine: openai
    model: upstream-model
    parameters: {{base_url: "{base_url}", api_key: "{key}"}}
rails:
  output:
    flows: [check no secrets]
    streaming: {{enabled: true, chunk_size: 4, context_size: 1}}
"""
ACTIONS = (
    "from railstream import action\n\n\n"
    "@action()\n"
    "def check_no_secrets(bot_message: str) -> bool:\n"
    "    return 'launch code' not in bot_message\n"
)
CLEAN = ["All", " systems", " are", " nominal", " today."]
BLOCKED = ["Sure:", " the", " launch", " code", " is", " 0000."]


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def start(
    tmp_path: Path,
    upstream: FakeOpenAI,
    *args: str,
    env: dict[str, str] | None = None,
    config: str = CONFIG,
) -> ServerProcess:
    folder = tmp_path / "configs" / "guarded"
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(config.format(base_url=upstream.base_url, key=KEY))
    (folder / "actions.py").write_text(ACTIONS)
    return ServerProcess(tmp_path / "configs", *args, env=env)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def exchange(
    client: httpx.AsyncClient, server: ServerProcess, upstream: FakeOpenAI
) -> list[int]:
    """A clean streamed reply, a blocked streamed one, a blocked whole one, a bad request."""
    statuses = []
    for tokens, stream in ((CLEAN, True), (BLOCKED, True), (BLOCKED, False)):
        upstream.script(Script(tokens=tokens))
        body = {"messages": [{"role": "user", "content": f"tell me {SECRET_TEXT}"}]}
        reply = await client.post(
            f"{server.url}/v1/chat/completions", json={**body, "stream": stream}
        )
        statuses.append(reply.status_code)
    bad = await client.post(f"{server.url}/v1/chat/completions", json={"messages": []})
    statuses.append(bad.status_code)
    return statuses


def access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "railstream.access" in line]


async def test_the_log_has_one_line_per_request_with_its_outcome_and_no_key_nor_text(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    server = start(tmp_path, upstream)
    try:
        assert await exchange(client, server, upstream) == [200, 200, 200, 400]
    finally:
        assert server.stop() == 0
    log = server.log()
    lines = access_lines(log)
    assert len(lines) == 4, log
    fields = [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)) for line in lines]
    assert [(f["stream"], f["status"], f["outcome"]) for f in fields] == [
        ("true", "200", "completed"),
        ("true", "200", "blocked"),
        ("false", "200", "blocked"),
        ("false", "400", "rejected"),
    ]
    assert fields[1]["rail"] == fields[2]["rail"] == '"check no secrets"'
    assert (fields[0]["tokens"], fields[1]["tokens"], fields[2]["tokens"]) == ("5", "6", "6")
    assert all(f["config"] == "guarded" for f in fields[:3])
    assert KEY not in log
    assert SECRET_TEXT not in log
    assert "launch code is 0000" not in log


async def test_json_log_lines_carry_the_same_fields(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    server = start(tmp_path, upstream, "--log-format", "json")
    try:
        await exchange(client, server, upstream)
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "railstream.access"]
    assert [(r["outcome"], r.get("rail")) for r in access] == [
        ("completed", None),
        ("blocked", "check no secrets"),
        ("blocked", "check no secrets"),
        ("rejected", None),
    ]
    assert all(r["level"] == "INFO" and "duration_ms" in r for r in access)
    assert KEY not in server.log()


def samples(text: str) -> dict[str, float]:
    """Prometheus' text format: ``name{labels}`` -> value."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_metrics_count_the_block_under_its_rail_and_each_outcome(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    server = start(tmp_path, upstream)
    try:
        await exchange(client, server, upstream)
        reply = await client.get(f"{server.url}/metrics")
    finally:
        server.stop()
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    got: dict[str, Any] = samples(reply.text)
    assert (
        got['railstream_rail_blocks_total{config="guarded",rail="check no secrets",side="output"}']
        == 2
    )
    requests = {k: v for k, v in got.items() if k.startswith("railstream_requests_total")}
    assert requests == {
        'railstream_requests_total{config="guarded",outcome="completed",stream="true"}': 1,
        'railstream_requests_total{config="guarded",outcome="blocked",stream="true"}': 1,
        'railstream_requests_total{config="guarded",outcome="blocked",stream="false"}': 1,
        'railstream_requests_total{config="",outcome="rejected",stream="false"}': 1,
    }
    assert got['railstream_tokens_generated_total{config="guarded"}'] >= 5
    assert got['railstream_time_to_first_chunk_seconds_count{config="guarded"}'] == 2
    assert got["railstream_streams_in_flight"] == 0
    rail_runs = got[
        'railstream_rail_duration_seconds_count{config="guarded",rail="check no secrets",side="output"}'
    ]
    assert rail_runs >= 4
    assert KEY not in reply.text


async def test_metrics_are_behind_the_servers_token(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    server = start(tmp_path, upstream, "--auth-token-env", "RS_TOKEN", env={"RS_TOKEN": "t0ken"})
    try:
        anonymous = await client.get(f"{server.url}/metrics")
        scraper = await client.get(
            f"{server.url}/metrics", headers={"Authorization": "Bearer t0ken"}
        )
    finally:
        server.stop()
    assert anonymous.status_code == 401
    assert scraper.status_code == 200
    assert "railstream_requests_total" in scraper.text


async def test_metrics_show_where_a_stream_waits_when_its_client_stops_reading(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    """Backpressure made visible: a client that stops reading a long reply fills the
    stream's channels, and the scrape shows the token channel full (all its room)."""
    upstream.script(Script(tokens=["ok "] * 200_000))
    server = start(tmp_path, upstream)
    try:
        body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
        async with client.stream("POST", f"{server.url}/v1/chat/completions", json=body) as reply:
            pieces = reply.aiter_bytes()  # held: a dropped iterator would close the response
            await pieces.__anext__()  # the reply began; now read no more
            channels: dict[str, float] = {}
            for _ in range(100):  # until the socket buffers are full (a hang guard, not timing)
                scraped = samples((await client.get(f"{server.url}/metrics")).text)
                channels = {k: v for k, v in scraped.items() if k.startswith("railstream_channel_")}
                if channels.get('railstream_channel_items{channel="tokens"}') == TOKENS_ROOM:
                    break
                await trio.sleep(0.1)
    finally:
        server.stop()
    assert channels['railstream_channel_items{channel="tokens"}'] == TOKENS_ROOM, (
        sorted(channels.items()),
        upstream.served[-1].tokens_written,
    )
    assert channels['railstream_channel_capacity{channel="tokens"}'] == TOKENS_ROOM
    assert channels['railstream_channel_capacity{channel="output"}'] == 1
    assert scraped["railstream_streams_in_flight"] == 1


async def test_metrics_have_each_released_chunks_latency_from_its_oldest_and_newest_token(
    tmp_path: Path, upstream: FakeOpenAI, client: httpx.AsyncClient
) -> None:
    """One observation per released chunk, for its oldest and its newest token. The windows
    (4 tokens, 1 of context) are held for their check (stream_first false) and the tokens come
    50 ms apart, so a chunk's oldest token has waited for the ones after it: its latencies add
    up to more."""
    upstream.script(Script(tokens=CLEAN * 3, delay=0.05))
    held = CONFIG.replace("context_size: 1}", "context_size: 1, stream_first: false}")
    assert held != CONFIG
    server = start(tmp_path, upstream, config=held)
    try:
        body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
        reply = await client.post(f"{server.url}/v1/chat/completions", json=body)
        assert reply.text.count('"content":') > 3  # the role chunk and several text chunks
        got = samples((await client.get(f"{server.url}/metrics")).text)
    finally:
        server.stop()
    chunks = got['railstream_chunks_released_total{config="guarded"}']
    assert chunks >= 3
    latency = 'railstream_chunk_latency_seconds_{}{{config="guarded",token="{}"}}'
    assert got[latency.format("count", "oldest")] == chunks
    assert got[latency.format("count", "newest")] == chunks
    assert got[latency.format("sum", "oldest")] > got[latency.format("sum", "newest")] > 0


def metrics_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("railstream-metrics-*"))


async def test_with_workers_every_scrape_counts_every_workers_requests(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """`--workers 2`: requests on fresh connections are spread over both workers, and so are
    scrapes; each scrape, whichever worker answers it, counts all of them (prometheus-client's
    multiprocess mode, in a directory of the server's own that is gone when it stops)."""
    before = metrics_dirs()
    upstream.script(Script(tokens=CLEAN))
    server = start(tmp_path, upstream, "--workers", "2")
    fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request
    try:
        async with httpx.AsyncClient(timeout=30, limits=fresh) as client:
            body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
            for _ in range(20):
                reply = await client.post(f"{server.url}/v1/chat/completions", json=body)
                assert reply.text.rstrip().endswith("data: [DONE]")
            scrapes = [samples((await client.get(f"{server.url}/metrics")).text) for _ in range(8)]
        during = metrics_dirs() - before
    finally:
        assert server.stop() == 0, server.log()
    answered = set(re.findall(r"\[(\d+)\] railstream\.access: ", server.log()))
    assert len(answered) == 2, server.log()  # both workers served (else this proves nothing)
    completed = 'railstream_requests_total{config="guarded",outcome="completed",stream="true"}'
    assert [scrape[completed] for scrape in scrapes] == [20] * 8
    assert all(scrape["railstream_streams_in_flight"] == 0 for scrape in scrapes)
    assert all(scrape['railstream_channel_capacity{channel="tokens"}'] == 0 for scrape in scrapes)
    assert len(during) == 1
    assert not any(path.exists() for path in during)


async def test_with_workers_a_stalled_stream_shows_in_the_scrapes_of_another_worker(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """The channel gauges add up every worker's streams, each worker sampling its own: a
    client that stops reading fills its stream's token channel on one worker, and a scraper
    whose connection is on the other worker (which never answers the stream's worker a scrape)
    sees it, within the sampling period. Which worker holds a kept-alive connection is told by
    a request on it: the access log line names its process."""
    server = start(tmp_path, upstream, "--workers", "2")
    one = httpx.Limits(max_connections=1)  # each client: one connection, kept alive
    try:
        async with contextlib.AsyncExitStack() as stack:
            on: dict[str, httpx.AsyncClient] = {}  # a client per worker's pid
            for _ in range(12):
                client = await stack.enter_async_context(httpx.AsyncClient(timeout=30, limits=one))
                lines = len(access_lines(server.log()))
                body = {"messages": [{"role": "user", "content": "hi"}]}
                await client.post(f"{server.url}/v1/chat/completions", json=body)
                with trio.fail_after(10):  # another process's log file: polled
                    while len(access_lines(server.log())) == lines:  # noqa: ASYNC110
                        await trio.sleep(0.01)
                pid = re.findall(r"\[(\d+)\] railstream\.access: ", server.log())[-1]
                on.setdefault(pid, client)
                if len(on) == 2:
                    break
            assert len(on) == 2, "twelve connections, all to one worker"
            reader, scraper = on.values()
            upstream.script(Script(tokens=["ok "] * 200_000))
            body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
            reply = await stack.enter_async_context(
                reader.stream("POST", f"{server.url}/v1/chat/completions", json=body)
            )
            pieces = reply.aiter_bytes()
            await pieces.__anext__()  # the reply began; now read no more
            seen: list[float] = []
            for _ in range(50):  # 10 s: a hang guard, not timing (the period is 1 s)
                scraped = samples((await scraper.get(f"{server.url}/metrics")).text)
                seen.append(scraped['railstream_channel_items{channel="tokens"}'])
                if seen[-1] == TOKENS_ROOM:
                    break
                await trio.sleep(0.2)
    finally:
        server.stop()
    assert seen[-1] == TOKENS_ROOM, seen
    assert scraped['railstream_channel_capacity{channel="tokens"}'] == TOKENS_ROOM
    assert scraped["railstream_streams_in_flight"] == 1


async def test_the_server_settles_its_heap_before_serving_and_says_so(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    """The start-up heap frozen out of the garbage collector's scans, young collections every
    10,000 allocations: said once at start (at debug), with how many objects were frozen."""
    server = start(tmp_path, upstream, "--log-level", "debug")
    try:
        log = server.log()
    finally:
        server.stop()
    found = re.search(r"gc: (\d+) start-up objects frozen; young collections every 10000 ", log)
    assert found, log
    assert int(found.group(1)) > 10_000  # the modules and configs, at the least
