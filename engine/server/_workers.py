"""``railstream server --workers N``: N processes serving one port, so one machine's cores
serve together.

This process reserves the port (bound with ``SO_REUSEPORT``, never listening, so no connection
waits on it), then starts N workers (``railstream server`` again, each loading every config)
that each listen on that port with ``SO_REUSEPORT``: the kernel spreads new connections over
their sockets. Once every worker listens, the reservation is dropped and the address is
announced. The server keeps no state between requests, so any worker may answer any request
(and several machines behind any load balancer work the same way). SIGINT/SIGTERM are passed
on to every worker, each of which shuts down as a single server does (its grace, then ends
what is left). A worker that dies takes the others down with it, and the server exits 1:
what restarts a server (systemd, a container runtime) restarts them all, rather than this
process serving on with fewer.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

from ._registry import ConfigRegistry
from ._run import announce

__all__ = ["serve_workers", "worker_argv"]

_POLL_S = 0.2
_START_S = 60  # a hang guard on a worker's start (loading its configs takes about a second)


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """A worker's command line: the server's own, one worker, on the reserved port."""
    kept: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--workers", "--port"):
            skip = True
            continue
        if item.startswith(("--workers=", "--port=")):
            continue
        kept.append(item)
    return [sys.executable, "-m", "railstream", *kept, "--port", str(port), "--reuse-port"]


def serve_workers(args: argparse.Namespace, registry: ConfigRegistry, argv: Sequence[str]) -> int:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reservation.bind((args.host, args.port))
    except OSError as exc:
        reservation.close()
        print(
            f"railstream server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 2
    port = reservation.getsockname()[1]
    # The workers' metrics files (prometheus-client's multiprocess mode): a directory of this
    # server's own, so no earlier run's counts are added in; removed when it ends.
    metrics_dir = tempfile.mkdtemp(prefix="railstream-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    try:
        return _serve(args, registry, argv, reservation, port, env)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(
    args: argparse.Namespace,
    registry: ConfigRegistry,
    argv: Sequence[str],
    reservation: socket.socket,
    port: int,
    env: dict[str, str],
) -> int:
    workers = [
        # A session of their own: a terminal's Ctrl-C reaches this process only, which passes
        # it on once (twice, a worker would take it for the second signal, the one without grace).
        subprocess.Popen(
            worker_argv(argv, port), stdout=subprocess.PIPE, start_new_session=True, env=env
        )
        for _ in range(args.workers)
    ]
    binds = _wait_listening(workers)
    reservation.close()
    if binds is None:
        _stop(workers)
        print("railstream server: a worker did not start (its error is above)", file=sys.stderr)
        return 2
    pids = " ".join(str(w.pid) for w in workers)
    # Before the announcement: whoever reads that may read the log at once.
    print(f"railstream server: {args.workers} workers: {pids}", file=sys.stderr, flush=True)
    announce(binds, registry)

    def pass_on(number: int, _: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(number)

    signalled = False

    def note(number: int, frame: FrameType | None) -> None:
        nonlocal signalled
        signalled = True
        pass_on(number, frame)

    signal.signal(signal.SIGINT, note)
    signal.signal(signal.SIGTERM, note)
    while all(w.poll() is None for w in workers):
        time.sleep(_POLL_S)
    died = None if signalled else next(w for w in workers if w.poll() is not None)
    if died is not None:
        print(
            f"railstream server: worker {died.pid} ended (status {died.returncode}); "
            "stopping the others",
            file=sys.stderr,
            flush=True,
        )
    # Signalled, every worker has had its signal: wait for them (a second would end one's
    # grace). Else one died: the others get theirs now.
    codes = [w.wait() for w in workers] if died is None else _stop(workers)
    for worker, code in zip(workers, codes, strict=True):
        if code and worker is not died:
            print(
                f"railstream server: worker {worker.pid} exited with status {code}",
                file=sys.stderr,
                flush=True,
            )
    return 1 if died is not None or any(codes) else 0


def _wait_listening(workers: list[subprocess.Popen[bytes]]) -> list[str] | None:
    """Each worker's announced address, once all listen; None if one exits first."""
    selector = selectors.DefaultSelector()
    lines: dict[int, bytes] = {}
    for worker in workers:
        assert worker.stdout is not None
        selector.register(worker.stdout, selectors.EVENT_READ, worker)
        lines[worker.pid] = b""
    deadline = time.monotonic() + _START_S
    waiting = set(lines)
    while waiting:
        events = selector.select(timeout=max(0.0, deadline - time.monotonic()))
        if not events:
            return None
        for key, _ in events:
            worker = key.data
            data = worker.stdout.read1(4096)
            if not data:
                return None  # it exited before it listened
            lines[worker.pid] += data
            if b"\n" in lines[worker.pid]:
                waiting.discard(worker.pid)
                selector.unregister(worker.stdout)
    first = lines[workers[0].pid].decode().split()
    return [word for word in first if word.startswith("http")]


def _stop(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    return [worker.wait() for worker in workers]
