"""Serving the app with hypercorn's trio worker."""

from __future__ import annotations

import gc
import logging
import select
import signal
import socket
import sys
from typing import Any, TypeVar, cast

import hypercorn.config
import hypercorn.protocol
import hypercorn.trio
import hypercorn.trio.run
import hypercorn.trio.tcp_server
import trio
from hypercorn.events import Event, RawData, Updated
from hypercorn.protocol.h2 import H2Protocol

from railstream.stages import RailstreamError

from ._app import create_app
from ._limits import ServerLimits
from ._observe import CHANNEL_SAMPLE_S, Metrics, metrics_available
from ._registry import ConfigRegistry
from ._shutdown import Shutdown

__all__ = ["CannotListenError", "first_leaf", "serve"]

_E = TypeVar("_E", bound=BaseException)

logger = logging.getLogger("railstream.server")

# hypercorn's own bound, past the grace: connections still open then (a client that does not
# read its last events, a body still arriving) are cut, so the process exits all the same.
_HARD_STOP_AFTER_GRACE_S = 5.0


class CannotListenError(RailstreamError, OSError):
    """:func:`serve` could not listen on its address (the port is taken, say): nothing served."""


class _ProtocolWrapper(hypercorn.protocol.ProtocolWrapper):
    """hypercorn's, noting when a request's first bytes are read (its headers are timed from
    then: see ``_TCPServer``), and arming the idle timer of a connection that has just turned
    into HTTP/2.

    The HTTP/2 preface (``PRI * HTTP/2.0``) reaches hypercorn's HTTP/1 parser as a request,
    which stops the connection's idle timer; nothing starts it again until a stream ends, so an
    h2c connection that never sends a request is never closed, and enough of them use up every
    file descriptor.
    """

    # When the first bytes of the next request were read (None: none since the connection
    # last turned idle), and the idle timer's wait to wake when they are.
    request_bytes_at: float | None = None
    wake: trio.CancelScope | None = None

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData) and event.data and self.request_bytes_at is None:
            self.request_bytes_at = trio.current_time()
            if self.wake is not None:
                self.wake.cancel()
        before = self.protocol
        await super().handle(event)
        now = self.protocol
        if now is not before and isinstance(now, H2Protocol) and now.idle:
            await self.send(Updated(idle=True))


class _TCPServer(hypercorn.trio.tcp_server.TCPServer):
    """hypercorn's connection, with three bounds on a connection that has no request running.

    Nothing read yet: a new connection has longer than the keep-alive timeout to send its first
    request. hypercorn arms a connection's idle timer when it accepts it; under a burst (a
    thousand clients at once, the loop busy with the streams already running) a request that
    arrived with its connection may not be read within the keep-alive timeout: the connection
    was then closed with the request unanswered, and the client saw "Server disconnected
    without sending a response". Between requests, the keep-alive timeout applies.

    Once a request's first bytes are read, its headers must be complete within the header
    timeout (hypercorn has none: a client sending a byte a second held its connection for as
    long as it liked). A request whose bytes wait unread when a bound passes is late because
    the server is, not the client: it gets the first-request time once more.
    """

    _had_request = False
    _in_request = False  # a request has begun (its headers are read) and not yet ended

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            # Set before the timer is stopped (which waits for a lock): the timer, run first,
            # must not close a connection whose request has just begun.
            self._in_request = not event.idle
            self._had_request = self._had_request or not event.idle
            self._wrapper().request_bytes_at = None
        await super().protocol_send(event)

    def _wrapper(self) -> _ProtocolWrapper:
        return cast(_ProtocolWrapper, self.protocol)

    async def _idle_timeout(self) -> None:
        keep_alive = self.config.keep_alive_timeout
        first_request = max(keep_alive, getattr(self.config, "first_request_timeout", keep_alive))
        header_timeout = getattr(self.config, "header_timeout", first_request)
        idle_until = trio.current_time() + (keep_alive if self._had_request else first_request)
        wrapper = self._wrapper()
        extended = False
        while not self.context.terminated.is_set():
            # hypercorn's own wrapper (were it ever used) keeps no such time: the idle bound.
            began: float | None = getattr(wrapper, "request_bytes_at", None)
            until = idle_until if began is None else began + header_timeout
            with trio.move_on_at(until) as wrapper.wake:
                if began is not None or getattr(wrapper, "request_bytes_at", None) is None:
                    await self.context.terminated.wait()
            wrapper.wake = None
            if self._in_request:
                return  # it has begun: stopping this timer is under way
            if trio.current_time() < until:
                continue  # a request's first bytes: its headers are timed now
            if self.context.terminated.is_set() or extended or not self._request_waiting():
                break
            # The request came in time and waits unread: the loop was too busy to get to it.
            # Closed now, it would go unanswered (the client seeing a reset, or a close).
            extended = True
            idle_until = trio.current_time() + first_request
            wrapper.request_bytes_at = None
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    def _request_waiting(self) -> bool:
        """Whether bytes (or the client's close) wait unread on the connection's socket."""
        sock = getattr(self.stream, "socket", None)
        if sock is None:
            return False
        try:
            poller = select.poll()  # not select(): descriptors past 1024 are common here
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False


# Young collections every this many net allocations (CPython's default is 700). A server
# starting hundreds of streams at once allocates a few hundred long-lived objects for each,
# and every collection then rescans them: see settle_heap.
GC_GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Before serving: the start-up heap (modules, configs) frozen out of the cyclic garbage
    collector's scans, and young collections made less frequent. The server owns its process,
    so it tunes what an application would. With CPython's defaults, at 500 streams started at
    once, the collector took about a quarter of the CPU and most of the time to first chunk
    (see README, Performance)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    logger.debug(
        "gc: %d start-up objects frozen; young collections every %d allocations",
        gc.get_freeze_count(),
        GC_GEN0_THRESHOLD,
    )


async def serve(
    registry: ConfigRegistry,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation); the bound URLs are reported as started.

    On the signal the listener closes and a request whose body completes after it gets a 503;
    those in flight have ``limits.shutdown_grace_s`` to finish, then are ended (see
    :class:`~railstream.server._shutdown.Shutdown`); a second signal ends them at once.
    Raises :class:`CannotListenError` (an ``OSError``, alone) when it cannot listen.
    """
    config = hypercorn.config.Config()
    if reuse_port:
        # A worker of ``--workers``: its own socket on the shared port; the kernel spreads new
        # connections over the workers' sockets (a shared socket would go to whichever worker
        # is awake first, often all of them to one). hypercorn takes the descriptor over.
        listener = _reuse_port_socket(host, port, limits.backlog if limits else 2048)
        config.bind = [f"fd://{listener.detach()}"]
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # request lines only would be logged; keys never are, either way
    limits = limits or ServerLimits()
    config.graceful_timeout = limits.shutdown_grace_s + _HARD_STOP_AFTER_GRACE_S
    # hypercorn's 100 resets bursts of a few hundred connections at once (logged nowhere).
    config.backlog = limits.backlog
    # Every protocol's idle connections close after it (h2c's too, with the wrapper above).
    config.keep_alive_timeout = limits.keep_alive_timeout_s
    # A new connection's first request: as long as its body may take (see _TCPServer).
    config.first_request_timeout = limits.body_timeout_s  # type: ignore[attr-defined]
    # A request's headers, from its first bytes (see _TCPServer).
    config.header_timeout = limits.header_timeout_s  # type: ignore[attr-defined]
    setattr(hypercorn.trio.run, "TCPServer", _TCPServer)  # noqa: B010
    # The one place hypercorn's trio server makes its protocol wrapper.
    setattr(hypercorn.trio.tcp_server, "ProtocolWrapper", _ProtocolWrapper)  # noqa: B010
    # Starlette's and hypercorn's ASGI type names differ; the protocol is the same.
    shutdown = Shutdown()
    metrics = Metrics() if metrics_available() else None
    if metrics is None:
        logger.info(
            "prometheus-client is not installed: no /metrics (pip install 'railstream[metrics]')"
        )
    app = cast(Any, create_app(registry, limits, shutdown, metrics))
    listening = False
    try:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()  # hypercorn's trigger: it stops listening
            served = trio.Event()  # hypercorn is done: every connection has closed
            caught: list[str] = []

            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for number in signals:
                        if not caught:
                            shutdown.begin()  # before hypercorn hears of it: none slip in
                            stop.set()
                        else:
                            shutdown.end_all()  # a second signal: no more grace
                        caught.append(signal.Signals(number).name)

            async def hypercorn_serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await hypercorn.trio.serve(
                    app, config, shutdown_trigger=stop.wait, mode="asgi", task_status=task_status
                )
                served.set()

            nursery.start_soon(on_signals)
            if metrics is not None and metrics.multiprocess:
                nursery.start_soon(metrics.sample_channels_every, CHANNEL_SAMPLE_S)
            binds = await nursery.start(hypercorn_serve)
            listening = True
            task_status.started(binds)
            await stop.wait()
            with trio.move_on_after(limits.shutdown_grace_s):
                await served.wait()
            shutdown.end_all()
            await served.wait()
            nursery.cancel_scope.cancel()  # the signal receiver
            if shutdown.streams_ended or shutdown.requests_ended:
                logger.warning(
                    "shut down on %s: %d streams and %d requests still running after the %gs "
                    "grace were ended",
                    caught[0],
                    shutdown.streams_ended,
                    shutdown.requests_ended,
                    limits.shutdown_grace_s,
                )
            else:  # nothing was cut: no cause for a warning
                logger.info("shut down on %s: nothing was running to end", caught[0])
    except* OSError as failed:
        if listening:
            raise
        # hypercorn binds inside nested nurseries: the caller gets the one error, not the tree.
        error = first_leaf(failed)
        raise CannotListenError(error.errno, error.strerror) from None
    finally:
        with trio.CancelScope(shield=True):
            await registry.aclose()


def first_leaf(group: BaseExceptionGroup[_E]) -> _E:
    """The first exception in ``group`` that is not itself a group."""
    error: _E | BaseExceptionGroup[_E] = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _reuse_port_socket(host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListenError(exc.errno, exc.strerror) from exc
    sock.listen(backlog)
    return sock


def announce(binds: list[str], registry: ConfigRegistry) -> None:
    """The line a user (and a test) reads to know where the server is."""
    print(f"railstream server on {' '.join(binds)} serving: {', '.join(registry.ids)}", flush=True)
    sys.stdout.flush()
