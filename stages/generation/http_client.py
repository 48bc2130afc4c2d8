"""One pooled ``httpx.AsyncClient`` per ``LLMRails``, for the trio run it is used in."""

from __future__ import annotations

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
    """

    def __init__(self, *, max_connections: int = 100, max_keepalive_connections: int = 20) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        )
        self._client: httpx.AsyncClient | None = None
        self._run: object = None
        # Made once, here: an SSL context costs ~50 ms (loading the CA bundle), which every new
        # client would otherwise pay on the first request of its run.
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    def client(self) -> httpx.AsyncClient:
        run = trio.lowlevel.current_trio_token()
        if self._client is None or self._run is not run:
            # Timeouts are set per request; redirects are never followed for a POST.
            self._client = httpx.AsyncClient(
                limits=self._limits, timeout=None, follow_redirects=False, verify=self._ssl
            )
            self._run = run
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._run is trio.lowlevel.current_trio_token():
            await client.aclose()
