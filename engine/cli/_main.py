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

``railstream --version``: ``railstream <version>``, the installed version.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._args import build_parser
from ._chat import chat_command
from ._serve import server_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "server":
            return server_command(args, argv)
        return chat_command(args)
    except KeyboardInterrupt:
        return 130
