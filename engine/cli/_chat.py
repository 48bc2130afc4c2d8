"""``railstream chat``: a guarded chat in the terminal, with a config folder's rails in this
process or through a railstream server (``--server-url``), one user message per line.

Typed, a line has readline's editing and history where Python has readline. Piped, each line
is decoded on its own: bytes the locale's encoding cannot decode become U+FFFD, with a line on
stderr saying so. A reader of the output that leaves (``| head``) ends the chat quietly, with
the status a shell gives a tool that SIGPIPE ended (141)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TextIO

import trio

from railstream.config_schema import ConfigError, RailsConfig, stream_first_notice
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
        stream = self.rails.stream_async(messages=history, include_metadata=True)
        try:
            async with stream:
                async for chunk in stream:
                    assert isinstance(chunk, dict)
                    if "text" in chunk:
                        on_text(chunk["text"])
                    elif "error" in chunk:
                        return chunk
        finally:
            # Once the block has closed the stream, its log is ready whatever ended the reply;
            # read inside the block, the log's own error would hide the one that ended it (an
            # interrupt, a reader of the output that went away).
            self.last_log = stream.log
        return None


@contextlib.contextmanager
def _typed_input(stdin: TextIO) -> Iterator[None]:
    """For a chat typed on a terminal: line editing and history (``readline``, where Python has
    it), typed bytes that never fail to decode, and the terminal's modes as they were at the
    end. Ctrl-C at the prompt leaves the chat while readline, in its thread, still holds the
    terminal without echo; the modes are put back here. Piped input needs none of this."""
    if not stdin.isatty():
        yield
        return
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (input() uses it once it is imported)
    if isinstance(stdin, io.TextIOWrapper):
        stdin.reconfigure(errors="replace")
    try:
        import termios
    except ImportError:  # Windows: no readline either, nothing to put back
        yield
        return
    modes = termios.tcgetattr(stdin.fileno())
    try:
        yield
    finally:
        termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, modes)


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
        self.lines_read = 0

    async def run(self) -> None:
        with _typed_input(self.stdin):
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
        read = self._prompt if interactive else self._read_piped
        while True:
            line = await trio.to_thread.run_sync(read, abandon_on_cancel=True)
            if line is None:
                if interactive:
                    self.term.write("\n")
                return
            text = line.strip()
            if text:
                await self._turn(text)

    def _prompt(self) -> str | None:
        """A typed line, through ``readline`` (line editing, history) where Python has it;
        None at the end of input (Ctrl-D). ``sys.stdin`` decodes it, its errors replaced."""
        try:
            return input("> ")
        except EOFError:
            return None

    def _read_piped(self) -> str | None:
        """The next piped line, None at the end. Read as bytes and decoded one line at a time,
        so that bytes the encoding cannot decode spoil only their own line (as text, the whole
        read-ahead block would fail, lines before it included): they are replaced with U+FFFD,
        and stderr says so."""
        raw = self.stdin.buffer.readline()
        if not raw:
            return None
        self.lines_read += 1
        encoding = self.stdin.encoding or "utf-8"
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            print(
                f"railstream chat: line {self.lines_read} of the input is not valid {encoding} "
                f"({exc.reason} at byte {exc.start + 1}): sent with U+FFFD in place of the "
                "bytes it cannot decode",
                file=sys.stderr,
                flush=True,
            )
            return raw.decode(encoding, errors="replace")

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


# How a shell reports a Unix tool that SIGPIPE ended: 128 + the signal's number (13).
_READER_LEFT = 141


def _run_chat(chat: Callable[..., Awaitable[None]], *args: Any) -> int:
    """Run a chat to its end (0), or until the reader of its output goes away."""
    reader_left = False
    try:
        trio.run(chat, *args)
    except* BrokenPipeError:
        # `railstream chat ... | head`: the reader has all it wanted, so end quietly, as Unix
        # tools do. stdout now writes nowhere: Python's last flush at exit must not fail too.
        reader_left = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return _READER_LEFT if reader_left else 0


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
        return _run_chat(
            _chat_remote,
            args.server_url,
            args.config_id,
            token,
            args.streaming,
            sys.stdin,
            term,
        )
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
    notice = stream_first_notice(rails.config) if args.streaming else None
    if args.verbose and notice is not None:
        term.notice("note", notice)  # once, before the first reply
    return _run_chat(_chat_local, rails, args.streaming, sys.stdin, term, args.verbose)
