"""How a request ended, as the access log and the metrics name it, and a failure's traceback
for the server's log (redacted)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from ._upstream import Redactor
from ._wire import HttpError

__all__ = ["MODEL_FAILURES", "log_failure", "outcome_of", "rejection"]

logger = logging.getLogger("railstream.server")

# The error types of a model's failure (as opposed to a block or a rail's error).
MODEL_FAILURES = ("downstream_error", "generation_error")


def rejection(exc: HttpError) -> tuple[str, str | None]:
    """``(outcome, error kind)`` of a request answered with an error status."""
    error = exc.body.get("error", {})
    code = error.get("code")
    kind = str(code) if code is not None else str(error.get("type"))
    if code == "server_shutting_down":
        return "shutdown", kind
    if isinstance(code, str) and code.startswith("upstream_"):
        return "model_error", kind
    return ("server_error" if exc.status >= 500 and exc.status != 503 else "rejected"), kind


def outcome_of(error: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """``(outcome, rail, error kind)`` of an error payload, for the access log and metrics."""
    kind = error.get("type")
    if kind == "guardrails_violation":
        return "blocked", error.get("param"), None
    if kind == "internal_error":
        return "rail_error", error.get("param"), str(error.get("code"))
    return "model_error", None, str(error.get("code") or kind)


def log_failure(redactor: Redactor, what: str, exc: BaseException) -> None:
    # Formatted here, not by logging, so that the traceback is redacted too: a key in an
    # exception's message must not reach the log either.
    detail = "".join(traceback.format_exception(exc))
    logger.error("%s: %s", what, redactor.for_log(detail).rstrip())
