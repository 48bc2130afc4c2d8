"""``railstream chat``: a guarded chat in the terminal, with a config folder's rails in this
process or through a railstream server (``--server-url``), one user message per line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import trio

from railstream.config_schema import ConfigError, RailsConfig
from railstream.facade import GenerationLog, GenerationResponse, LLMRails
from railstream.stages import GenerationError, RailNotFoundError, RailstreamError

from ._logging import configure_logging
from ._remote import open_remote

__all__ = ["chat_command"]


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
    """Where the chat's replies come from: ``_Local`` rails, or a ``Remote`` server."""

    refusal: str  # what the history keeps in place of a blocked reply

    async def reply(
        self, history: list[dict[str, str]], streaming: bool, on_text: Callable[[str], None]
    ) -> dict[str, Any] | None:
        """Produce the reply through ``on_text``; return the error payload that ended it, if any."""
        ...


class _Local:
    """The replies of a config's rails, run in this process."""

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
    async with open_remote(url, config_id, token) as remote:
        await _Chat(remote, streaming, stdin, term).run()


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


def chat_command(args: argparse.Namespace) -> int:
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
