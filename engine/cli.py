"""The ``railstream`` command.

``railstream chat CONFIG [--streaming]`` (or ``--config CONFIG``, NeMo's spelling), or
``railstream chat --server-url URL [--config-id ID] [--auth-token-env NAME] [--streaming]``: a
guarded chat in the terminal. One user message per line (typed, or piped in); the conversation
is kept; Ctrl-C stops the current reply (and the model behind it) without leaving the chat, and
at the prompt it leaves.

A block, or a model error during one reply (streamed or not), is one plain line in the
conversation, on stdout where the reply would have been, and the chat goes on: it is that
reply's outcome, as a block is, and the next message may well succeed. What makes every reply
fail (a bad or unusable config, a port already taken) is one plain line, or one per config
problem, on stderr, before the prompt, and exit code 2.

``railstream server --config DIR [--host 127.0.0.1] [--port 8000] ...``: the
OpenAI-compatible HTTP server.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

import httpx
import trio

from config_schema import ConfigError, RailsConfig
from stages.generation.sse import SSEDecoder

from .errors import GenerationError, RailNotFoundError, RailstreamError
from .llmrails import BLOCKED_REPLY, LLMRails
from .log import GenerationLog, GenerationResponse

__all__ = ["main"]


_LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str, log_format: str = "text") -> None:
    """railstream's loggers (``railstream.*``) to stderr, at ``level``: the command line's
    choice, never a library's (an embedding application sets up logging its own way)."""
    from .server.observe import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    logger = logging.getLogger("railstream")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _parser() -> argparse.ArgumentParser:
    # No abbreviations: with them, NeMo's `chat --config PATH` was read as `--config-id PATH`.
    parser = argparse.ArgumentParser(
        prog="railstream", description="Streaming output guardrails.", allow_abbrev=False
    )
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
        choices=_LOG_LEVELS,
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
        choices=_LOG_LEVELS,
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


class _Terminal:
    """Output, with colour only when it goes to a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.colour = out.isatty() and not os.environ.get("NO_COLOR")

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def notice(self, label: str, text: str) -> None:
        line = f"[{label}] {text}"
        if self.colour:
            line = f"\x1b[1;31m{line}\x1b[0m"
        self.write(line + "\n")


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """A plain (label, text) for an error payload."""
    body = error.get("error", {})
    kind = body.get("type")
    if kind == "guardrails_violation":
        return "blocked", str(body.get("message"))
    if kind == "internal_error":
        return "rail error", str(body.get("message"))
    if kind == "downstream_error":
        return f"model error {body.get('code')}", str(body.get("message"))
    return "error", str(body.get("message"))


class _Backend(Protocol):
    refusal: str  # what the history keeps in place of a blocked reply

    async def reply(
        self, history: list[dict[str, str]], streaming: bool, on_text: Callable[[str], None]
    ) -> dict[str, Any] | None:
        """Produce the reply through ``on_text``; return the error payload that ended it, if any."""
        ...


class _Local:
    def __init__(self, rails: LLMRails) -> None:
        self.rails = rails
        self.refusal = rails.config.rails.refusal
        self.last_log: GenerationLog | None = None  # the last reply's, for --verbose

    async def reply(
        self, history: list[dict[str, str]], streaming: bool, on_text: Callable[[str], None]
    ) -> dict[str, Any] | None:
        self.last_log = None
        if not streaming:
            try:
                result = await self.rails.generate_async(
                    messages=history, options={"log": {"llm_calls": True, "activated_rails": True}}
                )
            except GenerationError as exc:
                # The error a streamed reply ends with, so both kinds of chat show it alike.
                return exc.payload.to_dict()
            assert isinstance(result, GenerationResponse)
            assert not isinstance(result.response, str)
            self.last_log = result.log
            on_text(str(result.response[0]["content"]))
            return None
        async with self.rails.stream_async(messages=history, include_metadata=True) as stream:
            try:
                async for chunk in stream:
                    assert isinstance(chunk, dict)
                    if "text" in chunk:
                        on_text(chunk["text"])
                    elif "error" in chunk:
                        return chunk
            finally:
                self.last_log = stream.log
        return None


def _describe_log(log: GenerationLog) -> list[str]:
    """``--verbose``: each rail run and each LLM call of a reply, one line each."""
    lines = []
    for run in log.activated_rails:
        info = run.additional_info
        reason = f": {info['reason']}" if info.get("reason") else ""
        lines.append(
            f"{run.type} rail {run.name!r} on window {info.get('window_index')}: "
            f"{info.get('verdict')}{reason} ({run.duration * 1000:.1f} ms)"
        )
    for call in log.llm_calls:
        usage = ", ".join(
            f"{n} {what}"
            for n, what in (
                (call.prompt_tokens, "prompt"),
                (call.completion_tokens, "completion"),
            )
            if n is not None
        )
        lines.append(
            f"LLM call {call.task} on {call.llm_model_name or call.llm_provider_name}: "
            f"{call.status}, {f'{usage} tokens' if usage else 'usage not reported'} "
            f"({call.duration:.2f} s)"
        )
    return lines


class _Remote:
    def __init__(
        self, client: httpx.AsyncClient, url: str, config_id: str | None, token: str | None
    ) -> None:
        self.client = client
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.config_id = config_id
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.refusal = BLOCKED_REPLY  # the server's config is not known here: NeMo's default

    async def reply(
        self, history: list[dict[str, str]], streaming: bool, on_text: Callable[[str], None]
    ) -> dict[str, Any] | None:
        body: dict[str, Any] = {"messages": history, "stream": streaming}
        if self.config_id:
            body["config_id"] = self.config_id
        try:
            async with self.client.stream(
                "POST", self.url, json=body, headers=self.headers
            ) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    try:
                        return dict(json.loads(raw))
                    except ValueError:
                        return {
                            "error": {
                                "message": f"HTTP {response.status_code}: {raw[:200]!r}",
                                "type": "error",
                            }
                        }
                if not streaming:
                    reply = json.loads(await response.aread())
                    on_text(reply["choices"][0]["message"]["content"])
                    return None
                decoder = SSEDecoder()
                async for piece in response.aiter_bytes():
                    for event in decoder.feed(piece):
                        if event.data == "[DONE]":
                            return None
                        data = json.loads(event.data)
                        if "error" in data:
                            return dict(data)
                        blocked = (data.get("guardrails") or {}).get("error")
                        if blocked:
                            # A block ends the reply with content_filter, the rail named here.
                            return {"error": blocked}
                        for choice in data.get("choices", []):
                            content = (choice.get("delta") or {}).get("content")
                            if content:
                                on_text(content)
        except httpx.HTTPError as exc:
            return {"error": {"message": f"cannot reach {self.url}: {exc}", "type": "error"}}
        return None


class _Chat:
    def __init__(
        self,
        backend: _Backend,
        streaming: bool,
        stdin: TextIO,
        term: _Terminal,
        verbose: bool = False,
    ) -> None:
        self.backend = backend
        self.verbose = verbose
        self.streaming = streaming
        self.stdin = stdin
        self.term = term
        self.history: list[dict[str, str]] = []
        self.replying: trio.CancelScope | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._on_interrupt, nursery.cancel_scope)
            await self._loop()
            nursery.cancel_scope.cancel()

    async def _on_interrupt(self, chat: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT) as interrupts:
            async for _ in interrupts:
                if self.replying is not None:
                    self.replying.cancel()  # stop this reply (and its model), stay in the chat
                else:
                    self.term.write("\n")
                    chat.cancel()  # Ctrl-C at the prompt: leave
                    return

    async def _loop(self) -> None:
        interactive = self.stdin.isatty()
        while True:
            if interactive:
                self.term.write("> ")
            line = await trio.to_thread.run_sync(self.stdin.readline, abandon_on_cancel=True)
            if not line:
                if interactive:
                    self.term.write("\n")
                return
            text = line.strip()
            if text:
                await self._turn(text)

    async def _turn(self, text: str) -> None:
        self.history.append({"role": "user", "content": text})
        parts: list[str] = []

        def on_text(piece: str) -> None:
            parts.append(piece)
            self.term.write(piece)

        error: dict[str, Any] | None = None
        with trio.CancelScope() as scope:
            self.replying = scope
            error = await self.backend.reply(self.history, self.streaming, on_text)
        self.replying = None
        if parts:
            self.term.write("\n")
        if scope.cancelled_caught:
            self.term.notice("stopped", "the reply was interrupted")
        if error is not None:
            self.term.notice(*_describe(error))
            # A blocked text never enters the history: the model must not see it again.
            self.history.append({"role": "assistant", "content": self.backend.refusal})
        else:
            # What the user saw, even if interrupted, is what the model said.
            self.history.append({"role": "assistant", "content": "".join(parts)})
        log = getattr(self.backend, "last_log", None)
        if self.verbose and log is not None:
            for line in _describe_log(log):
                self.term.notice("log", line)


async def _chat_local(
    rails: LLMRails, streaming: bool, stdin: TextIO, term: _Terminal, verbose: bool = False
) -> None:
    async with rails:
        await _Chat(_Local(rails), streaming, stdin, term, verbose).run()


async def _chat_remote(
    url: str,
    config_id: str | None,
    token: str | None,
    streaming: bool,
    stdin: TextIO,
    term: _Terminal,
) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        await _Chat(_Remote(client, url, config_id, token), streaming, stdin, term).run()


def _unusable(rails: LLMRails, streaming: bool) -> str | None:
    """Why every message would fail with this config, found before the prompt (else None).

    The library finds these only when it is called, since an application may register actions
    after loading; a chat's actions all come from the config folder, so the chat can tell now.
    """
    if rails.provider("main") is None:
        return "it has no model of type main: add one to models in config.yml"
    output = rails.config.rails.output
    if streaming and output.flows and not output.streaming.enabled:
        return (
            "output rails are configured but rails.output.streaming.enabled is not true: "
            "set it to true in config.yml to stream with output rails (or chat without --streaming)"
        )
    try:
        rails._rails()  # resolves every output flow to its rail, as each call does
    except RailNotFoundError as exc:
        return str(exc)
    return None


def _chat_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)

    def refuse(problem: str) -> int:
        print(f"railstream chat: {problem}", file=sys.stderr)
        return 2

    term = _Terminal(sys.stdout)
    if args.config and args.config_option:
        return refuse("give the config folder once: CONFIG or --config PATH")
    folder = args.config or args.config_option
    if args.server_url:
        if args.verbose:
            return refuse(
                "--verbose shows a local chat's rail runs and LLM calls; a server keeps its "
                "own (railstream server --log-level debug)"
            )
        if folder:
            # The server serves its own configs; a local folder here would silently go unused.
            return refuse(
                "--server-url chats with the server's configs: "
                "pick one with --config-id ID, not a folder"
            )
        token = None
        if args.auth_token_env:
            # Read from the environment, never argv, so that `ps` does not show it.
            token = os.environ.get(args.auth_token_env)
            if not token:
                return refuse(f"--auth-token-env names {args.auth_token_env}, which is not set")
        trio.run(
            _chat_remote,
            args.server_url,
            args.config_id,
            token,
            args.streaming,
            sys.stdin,
            term,
        )
        return 0
    for remote_only in ("config_id", "auth_token_env"):
        if getattr(args, remote_only):
            option = "--" + remote_only.replace("_", "-")
            return refuse(f"{option} is for a server: use it with --server-url URL")
    if not folder:
        return refuse("give a CONFIG folder, or --server-url URL")
    try:
        rails = LLMRails(RailsConfig.from_path(folder))
    except ConfigError as exc:
        print(f"railstream: the config at {folder} has problems:\n{exc}", file=sys.stderr)
        return 2
    except (RailstreamError, TypeError, ValueError) as exc:
        print(f"railstream: cannot use the config at {folder}: {exc}", file=sys.stderr)
        return 2
    problem = _unusable(rails, args.streaming)
    if problem is not None:
        print(f"railstream: cannot use the config at {folder}: {problem}", file=sys.stderr)
        return 2
    trio.run(_chat_local, rails, args.streaming, sys.stdin, term, args.verbose)
    return 0


def _server_command(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from .server import ConfigRegistry, ServerLimits, ServerSetupError, serve
    from .server.run import CannotListenError, announce, first_leaf, settle_heap

    configure_logging(args.log_level, args.log_format)

    token = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            print(
                f"railstream server: --auth-token-env names {args.auth_token_env}, which is not set",
                file=sys.stderr,
            )
            return 2
    if not args.shutdown_grace_s >= 0:  # NaN too
        print("railstream server: --shutdown-grace-s must be 0 or more", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("railstream server: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        registry = ConfigRegistry.load(args.config, args.default_config_id)
    except ServerSetupError as exc:
        print(f"railstream server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        from .server.workers import serve_workers

        # The configs loaded here too: a bad one stops the start at once, before any worker.
        return serve_workers(args, registry, argv or sys.argv[1:])
    limits = ServerLimits(
        max_body_bytes=args.max_body_bytes,
        max_concurrent=args.max_concurrent,
        auth_token=token,
        body_timeout_s=args.body_timeout,
        backlog=args.backlog,
        keep_alive_timeout_s=args.keep_alive_timeout,
        shutdown_grace_s=args.shutdown_grace_s,
        block_error_event=args.block_error_event,
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    registry,
                    host=args.host,
                    port=args.port,
                    limits=limits,
                    reuse_port=args.reuse_port,
                    task_status=task_status,
                )
            )
            announce(binds, registry)  # a worker's goes to the process that started it

    settle_heap()
    cannot_listen: CannotListenError | None = None
    try:
        trio.run(run)
    except* CannotListenError as failed:
        # Raised before anything was served; this run's nursery wraps it in a group.
        cannot_listen = first_leaf(failed)
    if cannot_listen is not None:
        print(
            f"railstream server: cannot listen on {args.host}:{args.port}: {cannot_listen}",
            file=sys.stderr,
        )
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "server":
            return _server_command(args, argv)
        return _chat_command(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
