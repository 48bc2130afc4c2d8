"""The command's logging: railstream's loggers to stderr, at the level the command line chose."""

from __future__ import annotations

import logging
import sys

__all__ = ["LOG_LEVELS", "configure_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str, log_format: str = "text") -> None:
    """railstream's loggers (``railstream.*``) to stderr, at ``level``: the command line's
    choice, never a library's (an embedding application sets up logging its own way)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        # Deferred: only the server logs JSON, and a chat must not load the server (hypercorn,
        # starlette) just to format its log.
        from railstream.server import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
    logger = logging.getLogger("railstream")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
