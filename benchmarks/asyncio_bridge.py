"""What asyncio callers pay: ``python -m benchmarks.asyncio_bridge``.

The same streams consumed from trio (the pipeline's home), from asyncio through railstream's
bridge (trio guest mode on the asyncio loop: same thread), and, for comparison, from asyncio
through a trio run in a dedicated thread (each chunk fetched with trio.from_thread). CPU per
token on one long stream (16-token and 1-token batches), and CPU per stream on many short ones.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchmarks.pipeline import StampingProvider, make_rails
from railstream import LLMRails

MESSAGES = [{"role": "user", "content": "benchmark"}]


async def consume(rails: LLMRails) -> int:
    received = 0
    async with rails.stream_async(messages=MESSAGES) as stream:
        async for chunk in stream:
            received += str(chunk).count("tok")
    return received


def via_trio(fn: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(fn)


def via_guest(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())  # type: ignore[arg-type]


class TrioThread:
    """The alternative: trio in its own thread; asyncio asks it for each chunk."""

    def __init__(self) -> None:
        ready = threading.Event()
        self.token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None

        async def main() -> None:
            self.token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as self._nursery:
                ready.set()
                await self._stop.wait()
                self._nursery.cancel_scope.cancel()

        self.thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
        self.thread.start()
        ready.wait()

    def close(self) -> None:
        assert self.token is not None
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        self.thread.join()

    async def consume(self, rails: LLMRails) -> int:
        # Each from_thread.run is a task of its own that ends with its call, and a stream is
        # bound to its consumer: so one trio task holds the stream (async with) for its whole
        # life, and hands each chunk to the asyncio side through a channel.
        async def open_stream() -> trio.MemoryReceiveChannel[Any]:
            send, receive = trio.open_memory_channel[Any](0)

            async def hold(*, task_status: trio.TaskStatus[None]) -> None:
                async with send, rails.stream_async(messages=MESSAGES) as stream:
                    task_status.started()
                    async for chunk in stream:
                        await send.send(chunk)

            assert self._nursery is not None
            await self._nursery.start(hold)
            return receive

        async def next_chunk(receive: trio.MemoryReceiveChannel[Any]) -> Any:
            try:
                return await receive.receive()
            except trio.EndOfChannel:
                return None

        receive = await asyncio.to_thread(trio.from_thread.run, open_stream, trio_token=self.token)
        received = 0
        while True:
            chunk = await asyncio.to_thread(
                trio.from_thread.run, next_chunk, receive, trio_token=self.token
            )
            if chunk is None:
                return received
            received += str(chunk).count("tok")


def measure(label: str, run: Callable[[], int], expected: int, repeat: int) -> float:
    cpus = []
    for _ in range(repeat):
        cpu = time.process_time()
        got = run()
        cpus.append(time.process_time() - cpu)
        assert got == expected, (label, got, expected)
    return statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    thread = TrioThread()
    try:
        print(f"one stream of {args.tokens} tokens: CPU µs per token (median of {args.repeat})")
        print(f"{'batch':>5} {'trio':>8} {'asyncio (guest)':>16} {'asyncio (thread)':>17}")
        for batch in (16, 1):

            def rails(batch: int = batch) -> LLMRails:
                return make_rails(None, StampingProvider(args.tokens, batch, 0.0, stamp=False))

            def trio_run() -> int:
                r = rails()
                return int(via_trio(lambda: consume(r)))

            def guest_run() -> int:
                r = rails()
                return int(via_guest(lambda: consume(r)))

            def thread_run() -> int:
                r = rails()
                return int(asyncio.run(thread.consume(r)))

            figures = [
                measure(n, f, args.tokens, args.repeat) / args.tokens * 1e6
                for n, f in (("trio", trio_run), ("guest", guest_run), ("thread", thread_run))
            ]
            print(f"{batch:>5} {figures[0]:>8.2f} {figures[1]:>16.2f} {figures[2]:>17.2f}")

        print(f"\n{args.streams} short streams (3 tokens) one after another: CPU µs per stream")
        shared = make_rails(None, StampingProvider(3, 3, 0.0, stamp=False))

        async def many(consumer: Callable[[LLMRails], Awaitable[int]]) -> int:
            total = 0
            for _ in range(args.streams):
                total += await consumer(shared)
            return total

        expected = 3 * args.streams
        per_stream = [
            measure("trio", lambda: int(via_trio(lambda: many(consume))), expected, args.repeat),
            measure("guest", lambda: int(via_guest(lambda: many(consume))), expected, args.repeat),
            measure(
                "thread", lambda: int(asyncio.run(many(thread.consume))), expected, args.repeat
            ),
        ]
        print(f"{'trio':>8} {'asyncio (guest)':>16} {'asyncio (thread)':>17}")
        print(
            f"{per_stream[0] / args.streams * 1e6:>8.1f} {per_stream[1] / args.streams * 1e6:>16.1f} {per_stream[2] / args.streams * 1e6:>17.1f}"
        )
    finally:
        thread.close()


if __name__ == "__main__":
    main()
