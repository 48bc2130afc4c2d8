"""The private parts of hypercorn the server relies on (``_run``: its connection and protocol
wrapper subclasses, and the module names they are put in place under), checked against the
hypercorn installed. pyproject.toml pins the hypercorn releases the tests ran on; a release
that renames or stops calling one of these would silently undo the server's idle, header and
h2c bounds, so the tests name the attribute instead (tests/test_hypercorn_contract.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import version
from types import ModuleType

import hypercorn.protocol
import hypercorn.protocol.h2
import hypercorn.trio.run
import hypercorn.trio.tcp_server

__all__ = ["HYPERCORN_PRIVATE_USES", "hypercorn_mismatches"]


def _source(owner: type | ModuleType | Callable[..., object]) -> str:
    return inspect.getsource(owner)


def _tcp_server() -> str:
    return _source(hypercorn.trio.tcp_server.TCPServer)


# (the attribute, as _run uses it; what must hold for the use to work; the check)
HYPERCORN_PRIVATE_USES: tuple[tuple[str, str, Callable[[], bool]], ...] = (
    (
        "hypercorn.trio.run.TCPServer",
        "the name hypercorn's trio worker makes each connection with (replaced by _TCPServer)",
        lambda: (
            hasattr(hypercorn.trio.run, "TCPServer")
            and "TCPServer" in _source(hypercorn.trio.run.worker_serve)
        ),
    ),
    (
        "hypercorn.trio.tcp_server.ProtocolWrapper",
        "the name TCPServer makes its protocol wrapper with (replaced by _ProtocolWrapper)",
        lambda: (
            hasattr(hypercorn.trio.tcp_server, "ProtocolWrapper")
            and "ProtocolWrapper(" in _tcp_server()
        ),
    ),
    (
        "hypercorn.trio.tcp_server.TCPServer._idle_timeout",
        "the connection's idle timer, a method TCPServer runs (overridden)",
        lambda: (
            "async def _idle_timeout" in _tcp_server() and "self._idle_timeout" in _tcp_server()
        ),
    ),
    (
        "hypercorn.trio.tcp_server.TCPServer._initiate_server_close",
        "the method that closes a connection (called by the idle timer)",
        lambda: callable(getattr(hypercorn.trio.tcp_server.TCPServer, "_initiate_server_close", 0)),
    ),
    (
        "hypercorn.trio.tcp_server.TCPServer.protocol_send",
        "the method the protocol hands its events to (overridden: Updated(idle))",
        lambda: (
            "async def protocol_send" in _tcp_server() and "self.protocol_send" in _tcp_server()
        ),
    ),
    (
        "hypercorn.trio.tcp_server.TCPServer.protocol/config/context/stream",
        "the connection's attributes the idle timer reads",
        lambda: all(
            f"self.{name} =" in _tcp_server()
            for name in ("protocol", "config", "context", "stream")
        ),
    ),
    (
        "hypercorn.protocol.ProtocolWrapper.handle/protocol/send",
        "the wrapper's event handler (overridden), its current protocol and its send",
        lambda: all(
            text in _source(hypercorn.protocol.ProtocolWrapper)
            for text in ("async def handle", "self.protocol =", "self.send")
        ),
    ),
    (
        "hypercorn.protocol.h2.H2Protocol.idle",
        "whether an HTTP/2 connection has no stream running (read after an h2c upgrade)",
        lambda: "def idle" in _source(hypercorn.protocol.h2.H2Protocol),
    ),
)


def hypercorn_mismatches() -> list[str]:
    """One line per private hypercorn attribute the server uses that the installed hypercorn
    no longer has, or no longer uses as the server assumes; empty when all hold."""
    installed = version("hypercorn")
    found = []
    for name, role, holds in HYPERCORN_PRIVATE_USES:
        try:
            ok = holds()
        except (AttributeError, OSError, TypeError):
            ok = False
        if not ok:
            found.append(
                f"hypercorn {installed} changed {name} ({role}), which railstream's server "
                "overrides or relies on: adapt engine/server/_run.py to it, then the hypercorn "
                "range in pyproject.toml"
            )
    return found
