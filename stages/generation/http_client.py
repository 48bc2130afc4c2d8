"""One pooled ``httpx.AsyncClient`` per ``LLMRails``, for the trio run it is used in."""

from __future__ import annotations

import contextlib
import ssl

import certifi
import httpcore  # noqa: F401  (httpx imports it on its first client: ~75 ms of a first reply)
import httpx
import trio

__all__ = ["HttpClients"]


class HttpClients:
    """Hands out the pooled client; closing it closes every pooled connection.

    A client's connections belong to the event loop that opened them, so a new client is made
    when the facade is used from another ``trio.run`` (sync ``generate()`` runs one per call).
    Each client is closed when its run ends, so a run that never calls ``aclose()`` leaves no
    connection open behind it.
    """

    def __init__(self, *, max_connections: int = 100, max_keepalive_connections: int = 20) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        )
        self._client: httpx.AsyncClient | None = None
        self._run: object = None
        self._closer: trio.CancelScope | None = None  # the current client's run-end task
        # Made once, here: an SSL context costs ~50 ms (loading the CA bundle), which every new
        # client would otherwise pay on the first request of its run.
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    def client(self) -> httpx.AsyncClient:
        run = trio.lowlevel.current_trio_token()
        if self._client is None or self._run is not run:
            # Timeouts are set per request; redirects are never followed for a POST.
            client = httpx.AsyncClient(
                limits=self._limits, timeout=None, follow_redirects=False, verify=self._ssl
            )
            closer = trio.CancelScope()
            # A system task, because trio cancels those only once the run's main task has
            # ended: then no request of this run is left, and the client is closed in the run
            # that owns its sockets.
            trio.lowlevel.spawn_system_task(
                self._close_at_run_end, client, closer, name="railstream: close HTTP client"
            )
            self._client, self._run, self._closer = client, run, closer
        return self._client

    @staticmethod
    async def _close_at_run_end(client: httpx.AsyncClient, closer: trio.CancelScope) -> None:
        try:
            with closer:
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                # An error closing sockets at the run's end helps nobody, and one raised from
                # a system task would crash the whole run (TrioInternalError).
                await client.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        closer, self._closer = self._closer, None
        if client is not None and self._run is trio.lowlevel.current_trio_token():
            await client.aclose()
            if closer is not None:
                closer.cancel()  # its task has nothing left to close: let it end now
