"""`railstream server --workers N` (issue 16): N processes on one port, as a user starts it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

from .helpers import DEMO, ROOT
from .server_process import ServerProcess

HANG_GUARD_S = 60  # real seconds: the server is other processes


def demo(tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    config = folder / "config.yml"
    config.write_text(config.read_text().replace("delay_ms: 40", "delay_ms: 20"))
    return folder


def workers_of(server: ServerProcess) -> list[int]:
    match = re.search(r"railstream server: 2 workers: (\d+) (\d+)", server.log())
    assert match, server.log()
    return [int(match.group(1)), int(match.group(2))]


async def test_two_workers_share_the_port_and_both_answer(tmp_path: Path) -> None:
    """Concurrent streamed requests all complete, answered by both workers (the access log
    says which process wrote each line); a SIGTERM ends both, cleanly."""
    server = ServerProcess(demo(tmp_path), "--workers", "2")
    try:
        results: list[str] = []

        async def one(client: httpx.AsyncClient) -> None:
            body = {
                "model": "demo",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
            }
            reply = await client.post(f"{server.url}/v1/chat/completions", json=body)
            results.append(reply.text)

        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
                for _ in range(24):
                    nursery.start_soon(one, client)
        pids = workers_of(server)
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert len(results) == 24
    assert all(r.rstrip().endswith("data: [DONE]") for r in results)
    answered = {int(pid) for pid in re.findall(r"\[(\d+)\] railstream\.access: ", server.log())}
    assert answered == set(pids), server.log()
    shut = re.findall(r"\[(\d+)\] railstream\.server: shut down on SIGTERM", server.log())
    assert {int(pid) for pid in shut} == set(pids)


def test_a_worker_that_dies_takes_the_server_down_with_it(tmp_path: Path) -> None:
    """Not a server serving on with half its workers: the others stop and the server exits 1,
    so that what restarts it restarts them all."""
    server = ServerProcess(demo(tmp_path), "--workers", "2")
    first, second = workers_of(server)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + HANG_GUARD_S
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    code = server.process.poll()
    server.stop()
    assert code == 1
    assert f"railstream server: worker {first} ended (status -9); stopping the others" in (
        server.log()
    )
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


def test_workers_must_be_one_or_more() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "railstream", "server", "--config", str(DEMO), "--workers", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (
        2,
        "railstream server: --workers must be 1 or more\n",
    )
