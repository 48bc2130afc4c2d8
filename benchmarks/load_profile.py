"""Where the time goes under load: ``python -m benchmarks.load_profile [--streams 500] [--rounds 2]``.

The floor (a plain httpx loop) and railstream (windows 200/50, stream_first) each stream
``--streams`` unpaced 200-token replies at once from the stamping server, as in
``python -m benchmarks``'s load scenario (same client code, same pinning), and report what a
profile of the run does not show directly:

- the cyclic garbage collector: collections per generation and the CPU they took
  (``gc.callbacks``), against the run's CPU;
- trio's scheduler: how many batches it ran (one per wake from the network), how many task
  steps, and the time-weighted median batch: how long a task made runnable at a random
  moment waits for its turn, what every hop between tasks costs a message under this load;
- time to first chunk p50;
- objects the collector tracks per live stream (a census of ``gc.get_objects()`` with the
  streams paced at 10 ms/token, taken 1.5 s in), with the types that make most of them.

Every measurement is a fresh process pinned to the core the server is not on.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.cores import pin

ROOT = Path(__file__).resolve().parent.parent
RAILS = {"chunk_size": 200, "context_size": 50, "stream_first": True}


class _Batches:
    """A trio instrument: one scheduler batch runs from a wake from I/O to the next wait."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.steps = 0
        self.batches: list[tuple[float, int]] = []  # (seconds, task steps)

    def after_io_wait(self, timeout: float) -> None:
        self.started, self.steps = time.perf_counter(), 0

    def before_task_step(self, task: object) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        if self.started is not None:
            self.batches.append((time.perf_counter() - self.started, self.steps))


def _census() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def child(system: str, base_url: str, streams: int, census: bool) -> dict[str, Any]:
    """One measured run in this process (what the parent starts pinned to its core)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import client  # benchmarks/client.py, as the main benchmark runs it

    model = "bench:tokens=400:delay=0.01" if census else "bench:tokens=200:delay=0"
    spec = {
        "system": system,
        "base_url": base_url,
        "model": model,
        "streams": streams,
        "rails": RAILS if system == "railstream" else None,
    }
    collections_ = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.process_time()
        else:
            counted = collections_[info["generation"]]
            counted[0] += 1
            counted[1] += time.process_time() - began[0]

    batches = _Batches()
    found: dict[str, Any] = {}

    class Meter(client.Meter):  # type: ignore[misc, name-defined]
        def start(self) -> None:
            if census:
                before = _census()

                def later() -> None:
                    time.sleep(1.5)  # every stream open, mid-reply
                    during = _census() - before
                    found["objects_per_stream"] = sum(during.values()) / streams
                    found["types_per_stream"] = {
                        k: round(v / streams, 1) for k, v in during.most_common(12)
                    }

                threading.Thread(target=later, daemon=True).start()
            else:
                import trio

                gc.callbacks.append(on_gc)
                trio.lowlevel.add_instrument(batches)
            super().start()

    meter = Meter()
    runner = {"floor": client.run_floor, "railstream": client.run_railstream}[system]
    results = runner(spec, meter)
    if census:
        return found
    gc.callbacks.remove(on_gc)
    firsts = sorted(r["first_chunk_ns"] / 1e6 for r in results if r["first_chunk_ns"])
    durations = sorted((d for d, _ in batches.batches), reverse=True)
    # Time-weighted median: the batch that the middle of the busy time falls in.
    half, acc, weighted = sum(durations) / 2, 0.0, 0.0
    for d in durations:
        acc += d
        if acc >= half:
            weighted = d
            break
    return {
        "cpu_s": meter.cpu,
        "gc_s": sum(t for _, t in collections_.values()),
        "collections": [collections_[g][0] for g in (0, 1, 2)],
        "batches": len(durations),
        "task_steps": sum(s for _, s in batches.batches),
        "batch_ms_weighted_p50": weighted * 1000,
        "first_chunk_ms_p50": statistics.median(firsts) if firsts else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--child", nargs=3, metavar=("SYSTEM", "URL", "CENSUS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        system, url, census = args.child
        print(json.dumps(child(system, url, args.streams, census == "1")))
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin(0),
    )
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"

    def run(system: str, census: bool) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.load_profile", "--streams", str(args.streams),
             "--child", system, url, "1" if census else "0"],
            cwd=ROOT, capture_output=True, text=True, preexec_fn=pin(1), check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    try:
        print(f"{args.streams} concurrent unpaced 200-token streams, rounds interleaved")
        print(
            f"{'system':11} {'CPU s':>6} {'GC s':>5} {'collections 0/1/2':>17} {'batches':>7} "
            f"{'task steps':>10} {'batch ms':>8} {'first chunk p50 ms':>18}"
        )
        for _ in range(args.rounds):
            for system in ("floor", "railstream"):
                r = run(system, census=False)
                gens = "/".join(str(c) for c in r["collections"])
                print(
                    f"{system:11} {r['cpu_s']:6.2f} {r['gc_s']:5.2f} {gens:>17} {r['batches']:7} "
                    f"{r['task_steps']:10,} {r['batch_ms_weighted_p50']:8.1f} "
                    f"{r['first_chunk_ms_p50']:18,.1f}"
                )
        print("(batch ms: the time-weighted median scheduler batch, what one hop waits)")
        print()
        print("objects the collector tracks per live stream (paced 10 ms/token, 1.5 s in)")
        for system in ("floor", "railstream"):
            r = run(system, census=True)
            top = ", ".join(f"{k} {v}" for k, v in r["types_per_stream"].items())
            print(f"{system:11} {r['objects_per_stream']:6.1f}: {top}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
