"""The pooled HTTP connections of one ``LLMRails``, for the trio run they are used in."""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import AsyncIterator
from typing import Any

import certifi
import httpcore  # noqa: F401  (httpx imports it on its first client: ~75 ms of a first reply)
import httpx
import trio

__all__ = ["POOL_SIZE", "HttpClients"]

# The most connections one httpx client (one httpcore pool) holds. httpcore's pool does work
# at each request's start and each response's close that grows with the square of its idle
# connections (``_assign_requests_to_connections`` counts them once per idle connection): with
# 1,000 streams through one pool, that was two thirds of the server's CPU. More connections
# are spread over more pools.
POOL_SIZE = 32


class _Pool:
    """One httpx client and the requests in flight on it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.in_flight = 0


class HttpClients:
    """Hands out pooled connections; closing it closes every one of them.

    ``max_connections`` are split over ``ceil(max_connections / POOL_SIZE)`` httpx clients
    (``max_keepalive_connections`` alike), and each request goes to the one with the fewest
    requests in flight. Clients are made as the load needs them: a run starts with one, and
    another is added only when every one has a full pool's requests in flight (so a run of one
    request, as sync ``generate()`` is, makes one client, whatever ``max_connections`` is).

    A client's connections belong to the event loop that opened them, so new clients are made
    when the facade is used from another ``trio.run`` (sync ``generate()`` runs one per call).
    They are closed when their run ends, so a run that never calls ``aclose()`` leaves no
    connection open behind it.
    """

    def __init__(
        self, *, max_connections: int = 1000, max_keepalive_connections: int = 1000
    ) -> None:
        self.pool_count = max(1, math.ceil(max_connections / POOL_SIZE))
        # Each pool's share, the point past which a request is given a pool of its own.
        self._per_pool = math.ceil(max_connections / self.pool_count)
        self._limits = httpx.Limits(
            max_connections=self._per_pool,
            max_keepalive_connections=math.ceil(max_keepalive_connections / self.pool_count),
        )
        self._pools: list[_Pool] = []
        self._run: object = None
        self._closer: trio.CancelScope | None = None  # the current clients' run-end task
        # Made once, here: an SSL context costs ~50 ms (loading the CA bundle), which every new
        # client would otherwise pay on the first request of its run.
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """``httpx.AsyncClient.stream`` on the least busy pool."""
        pools = self._current_pools()
        pool = min(pools, key=lambda p: p.in_flight)
        if pool.in_flight >= self._per_pool and len(pools) < self.pool_count:
            pool = _Pool(self._client())
            pools.append(pool)
        pool.in_flight += 1
        try:
            async with pool.client.stream(method, url, **kwargs) as response:
                yield response
        finally:
            pool.in_flight -= 1

    def _current_pools(self) -> list[_Pool]:
        run = trio.lowlevel.current_trio_token()
        if not self._pools or self._run is not run:
            pools = [_Pool(self._client())]
            closer = trio.CancelScope()
            # A system task, because trio cancels those only once the run's main task has
            # ended: then no request of this run is left, and the clients are closed in the
            # run that owns their sockets (those added later too: it holds the same list).
            trio.lowlevel.spawn_system_task(
                self._close_at_run_end, pools, closer, name="railstream: close HTTP clients"
            )
            self._pools = pools
            self._run, self._closer = run, closer
        return self._pools

    def _client(self) -> httpx.AsyncClient:
        # Timeouts are set per request; redirects are never followed for a POST.
        return httpx.AsyncClient(
            limits=self._limits, timeout=None, follow_redirects=False, verify=self._ssl
        )

    @staticmethod
    async def _close_at_run_end(pools: list[_Pool], closer: trio.CancelScope) -> None:
        try:
            with closer:
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                for pool in pools:
                    # An error closing sockets at the run's end helps nobody, and one raised
                    # from a system task would crash the whole run (TrioInternalError).
                    with contextlib.suppress(Exception):
                        await pool.client.aclose()

    async def aclose(self) -> None:
        pools, self._pools = self._pools, []
        closer, self._closer = self._closer, None
        if pools and self._run is trio.lowlevel.current_trio_token():
            for pool in pools:
                await pool.client.aclose()
            if closer is not None:
                closer.cancel()  # its task has nothing left to close: let it end now
