"""Serving the app with hypercorn's trio worker."""

from __future__ import annotations

import signal
import sys
from functools import partial
from typing import Any, cast

import hypercorn.config
import hypercorn.trio
import trio

from .app import ServerLimits, create_app
from .registry import ConfigRegistry

__all__ = ["serve"]


async def serve(
    registry: ConfigRegistry,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation); the bound URLs are reported as started."""
    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # request lines only would be logged; keys never are, either way
    config.graceful_timeout = 5.0
    # Starlette's and hypercorn's ASGI type names differ; the protocol is the same.
    app = cast(Any, create_app(registry, limits))
    try:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()

            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            nursery.start_soon(on_signals)
            binds = await nursery.start(
                partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait, mode="asgi")
            )
            task_status.started(binds)
            await stop.wait()
    finally:
        with trio.CancelScope(shield=True):
            await registry.aclose()


def announce(binds: list[str], registry: ConfigRegistry) -> None:
    """The line a user (and a test) reads to know where the server is."""
    print(f"railstream server on {' '.join(binds)} serving: {', '.join(registry.ids)}", flush=True)
    sys.stdout.flush()
