"""The command line: ``railstream chat`` and ``railstream server`` with their options, and
``railstream --version``."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from ._logging import LOG_LEVELS

__all__ = ["build_parser", "railstream_version"]


def railstream_version() -> str:
    """The installed distribution's version, as ``railstream.__version__`` reads it (that root
    package sits above the CLI in the layers, so the CLI reads the metadata itself)."""
    try:
        return version("railstream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: with them, NeMo's `chat --config PATH` was read as `--config-id PATH`.
    parser = argparse.ArgumentParser(
        prog="railstream", description="Streaming output guardrails.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"railstream {railstream_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser(
        "chat", help="chat with a guarded model in the terminal", allow_abbrev=False
    )
    chat.add_argument(
        "config", nargs="?", help="a config folder (config.yml, prompts.yml, actions.py)"
    )
    chat.add_argument(
        "--config",
        dest="config_option",
        metavar="PATH",
        help="the config folder, spelled as NeMo's `nemoguardrails chat --config=PATH`",
    )
    chat.add_argument("--streaming", action="store_true", help="print the reply as it streams")
    chat.add_argument(
        "--server-url", help="chat through a railstream server instead (e.g. http://127.0.0.1:8000)"
    )
    chat.add_argument("--config-id", help="with --server-url: the config to use")
    chat.add_argument(
        "--auth-token-env",
        metavar="NAME",
        help="with --server-url: send 'Authorization: Bearer $NAME' (the token stays out of argv)",
    )
    chat.add_argument(
        "--verbose",
        action="store_true",
        help="under each reply, its rail runs (window, verdict, duration) and LLM calls (usage)",
    )
    chat.add_argument(
        "--log-level",
        default="warning",
        choices=LOG_LEVELS,
        help="railstream's log on stderr (default warning; debug: each LLM call and rail run)",
    )
    server = commands.add_parser(
        "server", help="serve configs over an OpenAI-compatible HTTP API", allow_abbrev=False
    )
    server.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port, each with every config (default 1); the "
        "server keeps no state between requests, so any of them may answer any request",
    )
    # A worker's: listen with SO_REUSEPORT, beside the others on the port (not for users).
    server.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    server.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="the log on stderr (default info: one line per request, failures, start-up; "
        "debug: each LLM call and rail run too)",
    )
    server.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text, or one JSON object per line for log shippers (default text)",
    )
    server.add_argument(
        "--config", required=True, help="one config folder, or a folder of config folders"
    )
    server.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1 only)"
    )
    server.add_argument(
        "--port", type=int, default=8000, help="port (0: any free port; default 8000)"
    )
    server.add_argument("--default-config-id", help="the config for requests that name none")
    server.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        type=cors_origin,
        metavar="ORIGIN",
        help="a browser origin (https://app.example.com) allowed to call the server, preflight "
        "included; repeat for several, '*' for any (default: none)",
    )
    server.add_argument(
        "--auth-token-env", metavar="NAME", help="require 'Authorization: Bearer $NAME'"
    )
    server.add_argument(
        "--max-concurrent", type=int, default=512, help="requests at once before 503 (default 512)"
    )
    server.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)"
    )
    server.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time to read a request body, then 408 (default 30)",
    )
    server.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a request's headers must be complete this long after its first byte, else the "
        "connection is closed (default 10)",
    )
    server.add_argument(
        "--backlog",
        type=int,
        default=2048,
        help="connections waiting to be accepted (default 2048)",
    )
    server.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="an idle connection is closed after it (default 5)",
    )
    server.add_argument(
        "--shutdown-grace-s",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, time for requests in flight to finish before they are ended "
        "(default 10)",
    )
    server.add_argument(
        "--block-error-event",
        action="store_true",
        help="also end a blocked stream with an error event after its content_filter chunk "
        "(the openai client then raises APIError; a gateway with fallbacks takes a block for a "
        "failure and may answer with another, unguarded model)",
    )
    return parser


def cors_origin(value: str) -> str:
    """An origin as browsers send it: scheme://host[:port], nothing after; or ``*``."""
    if value == "*":
        return value
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an origin: write scheme://host[:port], e.g. https://app.example.com"
        )
    return value
