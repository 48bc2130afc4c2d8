"""railstream from asyncio: the seeds' examples verbatim, cancellation across the bridge, no leaks.

Under asyncio the trio pipeline runs in trio's guest mode on the asyncio loop (railstream.facade._asyncio_bridge).
These tests run real asyncio event loops (asyncio.run), so they are plain sync tests.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from railstream import GenerationError, LLMRails, RailsConfig
from railstream.stages._errors import DownstreamError

from .helpers import DEMO, ROOT, make_rails

SEEDS = ROOT.parent / "shared" / "seeds"
# The seeds' Python examples, verbatim (the seed documents live outside this repository).
VENDORED = Path(__file__).parent / "seed_examples"
HANG_GUARD_S = 60  # real seconds: asyncio has no autojump clock
HELLO = "Hello! I am a scripted model running inside railstream. Every token you see has passed the output rails, window by window."


def fast_demo(target: Path) -> Path:
    folder = Path(shutil.copytree(DEMO, target))
    config = folder / "config.yml"
    config.write_text(config.read_text().replace("delay_ms: 40", "delay_ms: 0"))
    return folder


def examples_in(folder: Path) -> list[tuple[str, int, str]]:
    """(document, index, code) for every Python example in the seed documents in ``folder``."""
    blocks = []
    for doc in sorted(folder.glob("*.txt")):
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)):
            blocks.append((doc.name, i, code))
    return blocks


def seed_blocks() -> list[tuple[str, int, str]]:
    """The vendored copies: (document, index, code)."""
    blocks = []
    for path in sorted(VENDORED.glob("*.py.txt")):
        doc, index = path.name.removesuffix(".py.txt").rsplit("_", 1)
        blocks.append((f"{doc}.txt", int(index), path.read_text()))
    return blocks


def railstream_imports(code: str) -> str:
    """The only change to a seed example: railstream's imports for NeMo Guardrails'."""
    return code.replace(
        "from nemoguardrails.streaming import", "from railstream.streaming import"
    ).replace("from nemoguardrails import", "from railstream import")


def run_notebook(blocks: list[str], runner: Any, cwd: Path) -> dict[str, Any]:
    """Run examples one after another in one namespace, as a notebook does (top-level await
    allowed); async ones with ``runner`` (asyncio.run or trio.run), sync ones directly."""
    namespace: dict[str, Any] = {"__name__": "__seed__"}
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for code in blocks:
            compiled = compile(code, "<seed>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(compiled, namespace)
            if inspect.iscoroutine(result):

                async def main(coroutine: Any = result) -> None:
                    await coroutine

                runner(main)
    finally:
        os.chdir(old)
    return namespace


def runnable_seed_blocks() -> list[Any]:
    params = []
    for doc, i, code in seed_blocks():
        marks = []
        if "HuggingFacePipelineCompatible" in code:
            marks.append(
                pytest.mark.skip(
                    reason="a fragment (pipeline(# other parameters ...)); its adapted form runs in test_huggingface.py"
                )
            )
        params.append(pytest.param(doc, i, code, id=f"{doc[:3]}-{i}", marks=marks))
    return params


@pytest.fixture
def seed_cwd(tmp_path: Path) -> Path:
    fast_demo(tmp_path / "config")  # the seeds load "./config": the demo, unpaced
    return tmp_path


@pytest.mark.filterwarnings("ignore:StreamingHandler is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("doc", "index", "code"), runnable_seed_blocks())
def test_every_seed_example_runs_as_printed_under_asyncio(
    doc: str, index: int, code: str, seed_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Examples that use names from an earlier one (messages) run after it, as in a notebook.
    earlier = [
        railstream_imports(c)
        for d, i, c in seed_blocks()
        if d == doc and i < index and "HuggingFace" not in c
    ]
    setup = [c for c in earlier if "messages = " in c and "import asyncio" not in c][:1]
    namespace = run_notebook(
        [*setup, railstream_imports(code)], lambda fn: asyncio.run(fn()), seed_cwd
    )
    out = capsys.readouterr().out
    if "result = await rails.generate_async" in code:
        assert namespace["result"] == {"role": "assistant", "content": HELLO}
        # The example's consumer task printed the guarded reply, all of it, as it streamed
        # (after what the setup example printed: it streams the same first reply).
        assert out == HELLO * (1 + len(setup)), f"the StreamingHandler's consumer printed {out!r}"
    elif "stream_async" in code:
        assert out.startswith("Hello! I am a scripted model") or out.startswith("Sure,")
    elif "llm_calls" in code:
        assert re.search(r"Total tokens: \d+\nPrompt tokens: \d+\nCompletion tokens: \d+\n$", out)
    else:
        pytest.fail(f"no check for this example:\n{code}")


def test_the_vendored_seed_examples_are_the_seeds_verbatim() -> None:
    assert len(seed_blocks()) == 8  # four per document, HuggingFace ones included
    if not SEEDS.is_dir():
        pytest.skip(f"the seed documents are not beside this checkout ({SEEDS})")
    assert seed_blocks() == examples_in(SEEDS)


@pytest.mark.parametrize(
    ("doc", "index", "code"),
    [
        p
        for p in runnable_seed_blocks()
        if "asyncio" not in p.values[2] and "HuggingFace" not in p.values[2]
    ],
)
def test_seed_examples_that_need_no_asyncio_api_run_under_trio(
    doc: str, index: int, code: str, seed_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = [railstream_imports(c) for d, i, c in seed_blocks() if d == doc and i < index]
    setup = [c for c in earlier if "messages = " in c and "import asyncio" not in c][:1]
    run_notebook([*setup, railstream_imports(code)], trio.run, seed_cwd)
    assert capsys.readouterr().out


# the same behaviour as under trio


def test_errors_surface_in_asyncio_as_under_trio() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "partial "
        raise DownstreamError(429, "rate limited")

    class Unauthorized:
        provider_name = "test"
        model_name = None

        async def stream(self, request: Any, emit: Any) -> Any:
            raise DownstreamError(401, "invalid api key")

        async def complete(self, request: Any) -> Any:
            raise DownstreamError(401, "invalid api key")

    rails = make_rails(["unused"])

    async def main() -> tuple[list[str], BaseException | None]:
        chunks = [
            c
            async for c in rails.stream_async(
                messages=[{"role": "user", "content": "x"}], generator=failing()
            )
        ]
        other = LLMRails(RailsConfig.from_content(yaml_content=""), llm=Unauthorized())  # type: ignore[arg-type]
        try:
            await other.generate_async(messages=[{"role": "user", "content": "x"}])
        except GenerationError as exc:
            return chunks, exc
        return chunks, None

    chunks, error = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))
    assert chunks == [
        "partial ",
        json.dumps(
            {
                "error": {
                    "message": "rate limited",
                    "type": "downstream_error",
                    "param": None,
                    "code": 429,
                }
            }
        ),
    ]
    assert isinstance(error, DownstreamError)
    assert error.status == 401


def test_a_cancelled_asyncio_task_cancels_the_pipeline() -> None:
    rails = make_rails([" ".join(f"w{i}" for i in range(1000))], delay_ms=5)
    provider = rails.provider("main")

    async def main() -> tuple[int, int]:
        async def consume() -> None:
            async for _chunk in rails.stream_async(messages=[{"role": "user", "content": "x"}]):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        at_cancel = provider.tokens_streamed  # type: ignore[union-attr]
        await asyncio.sleep(0.3)  # a leaked generation would go on producing meanwhile
        return at_cancel, provider.tokens_streamed  # type: ignore[union-attr]

    at_cancel, later = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))
    assert 0 < at_cancel < 1000
    assert later - at_cancel <= 1  # at most the token that was already on its way


@pytest.fixture
def upstream_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--tokens", "2000", "--delay", "0.005"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    yield f"http://127.0.0.1:{port}"
    process.kill()
    process.wait()
    process.stdout.close()


def test_a_cancelled_asyncio_task_closes_the_upstream_http_request(upstream_process: str) -> None:
    doc = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "m",
                "parameters": {"base_url": f"{upstream_process}/v1"},
            }
        ]
    }
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(doc)))

    async def main() -> list[dict[str, Any]]:
        received = asyncio.Event()

        async def consume() -> None:
            async for _chunk in rails.stream_async(messages=[{"role": "user", "content": "x"}]):
                received.set()

        task = asyncio.create_task(consume())
        await received.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with httpx.AsyncClient() as client:
            for _ in range(200):  # poll the upstream's record (bounded; real time)
                stats = (await client.get(f"{upstream_process}/_stats")).json()
                if stats and stats[0]["disconnected_at"] is not None:
                    break
                await asyncio.sleep(0.05)
        await rails.aclose()
        return stats  # type: ignore[no-any-return]

    stats = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))
    assert stats[0]["disconnected_at"] is not None, "the upstream never saw the client go"
    assert stats[0]["tokens_written"] < 2000
    assert stats[0]["finished"] is False


# no leaks


def counts() -> tuple[int, int, int]:
    gc.collect()
    return threading.active_count(), len(asyncio.all_tasks()), tracemalloc.get_traced_memory()[0]


def test_many_sequential_and_concurrent_streams_from_asyncio_leak_nothing() -> None:
    rails = make_rails(["one two three four five six seven eight"])

    async def one() -> str:
        return "".join(
            [c async for c in rails.stream_async(messages=[{"role": "user", "content": "x"}])]
        )

    async def main() -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
        # Warm up: the guest run, and the scheduler's structures grown to 200 tasks at once
        # (measured: they grow on the first burst and stay flat on later ones).
        for _ in range(20):
            await one()
        await asyncio.gather(*(one() for _ in range(200)))
        # Traced from a burst of the same size on: what the last burst leaves alive until the
        # next one replaces it (asyncio's gathering future keeps its 200 finished tasks, about
        # 180 KB) is in ``before`` too, so only growth with the number of streams is measured.
        tracemalloc.start()
        await asyncio.gather(*(one() for _ in range(200)))
        before = counts()
        for _ in range(1000):
            assert await one() == "one two three four five six seven eight"
        after_sequential = counts()
        results = await asyncio.gather(*(one() for _ in range(200)))
        assert set(results) == {"one two three four five six seven eight"}
        after_concurrent = counts()
        tracemalloc.stop()
        return before, after_sequential, after_concurrent

    before, sequential, concurrent = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S * 2))
    assert sequential[:2] == before[:2]  # threads, asyncio tasks
    assert concurrent[:2] == before[:2]
    # Memory: no growth with the number of streams (a leak of even 200 bytes each would show).
    assert sequential[2] - before[2] < 200_000
    assert concurrent[2] - before[2] < 200_000


def test_the_guest_run_ends_with_the_loop() -> None:
    rails = make_rails(["fine"])
    before = threading.active_count()

    async def main() -> str:
        return "".join(
            [c async for c in rails.stream_async(messages=[{"role": "user", "content": "x"}])]
        )

    for _ in range(5):  # five loops, one after another: each one's guest run ends with it
        assert asyncio.run(main()) == "fine"
    # trio keeps idle worker threads for a few seconds; they are few, and do not grow per loop.
    assert threading.active_count() - before <= 2


def test_a_crashed_guest_run_is_reported_and_the_next_call_gets_a_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure of the guest run itself is logged (nothing else awaits it), its caller gets
    an error rather than a silent cancellation, and the bridge starts afresh."""
    from railstream.facade._asyncio_bridge import AsyncioBridge

    class Fatal(BaseException):  # passes every `except Exception`: it ends the guest run
        pass

    async def crash() -> None:
        raise Fatal("the guest run breaks")

    async def main() -> tuple[BaseException | None, str]:
        bridge = await AsyncioBridge.get()
        try:
            await bridge.call(crash)
        except BaseException as exc:  # what the caller sees
            seen: BaseException | None = exc
        else:
            seen = None
        rails = make_rails(["still fine"])
        text = "".join(
            [c async for c in rails.stream_async(messages=[{"role": "user", "content": "x"}])]
        )
        return seen, text

    with caplog.at_level("ERROR", logger="railstream.asyncio"):
        seen, text = asyncio.run(main())
    assert isinstance(seen, RuntimeError), f"the caller saw {seen!r}"
    assert str(seen) == "railstream's trio guest run stopped before this call ended"
    assert text == "still fine"
    (record,) = [r for r in caplog.records if r.name == "railstream.asyncio"]
    assert record.getMessage().startswith(
        "railstream's trio guest run on this asyncio loop crashed"
    )
    assert record.exc_info is not None
    assert "the guest run breaks" in repr(record.exc_info[1])


# FastAPI


@pytest.fixture
def fastapi_server(tmp_path: Path) -> Iterator[str]:
    import socket
    import time

    demo = fast_demo(tmp_path / "demo")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                "examples",
                "fastapi_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "RAILSTREAM_CONFIG": str(demo)},
            stdout=sink,
            stderr=sink,
        )
        deadline = time.monotonic() + HANG_GUARD_S
        while b"Application startup complete" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # waiting for another process to start (a hang guard bounds it)
        yield f"http://127.0.0.1:{port}"
        process.terminate()
        process.wait(timeout=15)


def test_the_fastapi_example_streams_guarded_output(fastapi_server: str) -> None:
    async def main() -> list[str]:
        replies = []
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(2):
                async with client.stream(
                    "POST", f"{fastapi_server}/chat", json={"message": "Hello!"}
                ) as response:
                    assert response.status_code == 200
                    replies.append("".join([piece async for piece in response.aiter_text()]))
        return replies

    hello, blocked = asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))
    assert hello == HELLO
    assert blocked.startswith("Sure, here is the deployment ")
    assert blocked.endswith('"code": "content_blocked"}}')
    assert "sk-live" not in blocked
