"""``railstream chat CONFIG [--streaming]``: a guarded chat in the terminal.

Reads one user message per line (typed, or piped in), keeps the conversation, and prints the
guarded reply; a block or an error is shown as a plain line, not raw JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from config_schema import ConfigError, RailsConfig

from .errors import RailstreamError
from .llmrails import BLOCKED_REPLY, LLMRails

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="railstream", description="Streaming output guardrails.")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="chat with a guarded model in the terminal")
    chat.add_argument("config", help="a config folder (config.yml, prompts.yml, actions.py)")
    chat.add_argument("--streaming", action="store_true", help="print the reply as it streams")
    return parser


class _Terminal:
    """Output, with colour only when it goes to a terminal."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.colour = out.isatty()

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def notice(self, label: str, text: str) -> None:
        line = f"[{label}] {text}"
        if self.colour:
            line = f"\x1b[1;31m{line}\x1b[0m"
        self.write(line + "\n")


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """A plain (label, text) for an in-stream error payload."""
    body = error.get("error", {})
    kind = body.get("type")
    if kind == "guardrails_violation":
        return "blocked", str(body.get("message"))
    if kind == "internal_error":
        return "rail error", str(body.get("message"))
    if kind == "downstream_error":
        return f"model error {body.get('code')}", str(body.get("message"))
    return "error", str(body.get("message"))


async def _reply(
    rails: LLMRails, history: list[dict[str, str]], streaming: bool, term: _Terminal
) -> str:
    """Answer the last message; return what goes into the history as the assistant's turn."""
    if not streaming:
        result = await rails.generate_async(messages=history)
        assert isinstance(result, dict)
        term.write(f"{result['content']}\n")
        return str(result["content"])
    parts: list[str] = []
    async with rails.stream_async(messages=history, include_metadata=True) as stream:
        async for chunk in stream:
            assert isinstance(chunk, dict)
            if "text" in chunk:
                parts.append(chunk["text"])
                term.write(chunk["text"])
            elif "error" in chunk:
                if parts:
                    term.write("\n")
                term.notice(*_describe(chunk))
                # The blocked text never enters the history: the model must not see it again.
                return BLOCKED_REPLY
    term.write("\n")
    return "".join(parts)


async def _chat(rails: LLMRails, streaming: bool, stdin: TextIO, term: _Terminal) -> None:
    interactive = stdin.isatty()
    history: list[dict[str, str]] = []
    while True:
        if interactive:
            term.write("> ")
        line = await trio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True)
        if not line:
            if interactive:
                term.write("\n")
            return
        text = line.strip()
        if not text:
            continue
        history.append({"role": "user", "content": text})
        history.append(
            {"role": "assistant", "content": await _reply(rails, history, streaming, term)}
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    term = _Terminal(sys.stdout, sys.stderr)
    try:
        rails = LLMRails(RailsConfig.from_path(args.config))
    except ConfigError as exc:
        print(f"railstream: the config at {args.config} has problems:\n{exc}", file=sys.stderr)
        return 2
    except (RailstreamError, TypeError, ValueError) as exc:
        print(f"railstream: cannot use the config at {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(_chat, rails, args.streaming, sys.stdin, term)
    except KeyboardInterrupt:
        term.write("\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
