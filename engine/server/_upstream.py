"""What a client learns of the upstream model server: what failed, never where or with what key.

The provider's errors name the endpoint on purpose (``... (POST http://10.0.0.7:8000/v1/...)``):
a library user debugging their own setup needs it. A server's client must not learn where the
model lives, nor a key an upstream echoes back in its error message, so every error message
the server sends passes through :class:`Redactor`; the server's log keeps the endpoint (never
a key). An upstream's HTTP failure is answered as the upstream's (``type: upstream_error``, its
status in ``upstream_status``), never as if the server itself refused the client: see
:func:`upstream_http_error` and the table in README.md ("Server").
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from railstream.config_schema import OpenAISettings, RailsConfig, redacted, secret_values
from railstream.stages import (
    DownstreamError,
    ProviderConnectionError,
    ProviderProtocolError,
    ProviderTimeoutError,
)
from railstream.stages.generation import resolve_api_key

from ._wire import HttpError

__all__ = ["UPSTREAM", "Redactor", "upstream_http_error"]

UPSTREAM = "<upstream>"  # what a client reads where an endpoint was

# How the provider names its endpoint in a message: " (POST <url>)".
_WHERE = re.compile(r" \(POST [^\s()]+\)")


class Redactor:
    """Hides, in text for a client, every model endpoint and every secret of the configs."""

    def __init__(self, configs: Iterable[RailsConfig], secrets: Iterable[str] = ()) -> None:
        found = {s for s in secrets if s}
        endpoints: set[str] = set()
        hosts: set[str] = set()
        for config in configs:
            for model in config.models:
                found |= secret_values(dict(model.parameters))
                if model.engine != "openai":
                    continue  # the other engines run in this process: no endpoint, no key
                try:
                    key = resolve_api_key(model, os.environ)
                except ValueError:
                    key = None  # an unset variable: the config did not load, nothing to hide
                if key:
                    found.add(key)
                base = OpenAISettings.from_parameters(model.parameters).base_url
                url = urlsplit(base)
                chat = base.rstrip("/") + "/chat/completions"
                endpoints |= {chat, redacted(chat), base, redacted(base), base.rstrip("/")}
                if url.netloc:
                    endpoints |= {f"{url.scheme}://{url.netloc}", url.netloc}
                    endpoints.add(redacted(f"{url.scheme}://{url.netloc}"))
                if url.hostname:
                    hosts.add(url.hostname)
        self._secrets = sorted(found, key=len, reverse=True)
        # Longest first, so that a URL goes whole before its host:port is looked for.
        self._endpoints = sorted((e for e in endpoints if e), key=len, reverse=True)
        # A bare host name, only as a whole name: "vllm" in "vllm_engine" is not the host.
        self._hosts = [
            re.compile(rf"(?<![\w.-]){re.escape(h)}(?![\w-])")
            for h in sorted(hosts, key=len, reverse=True)
        ]

    def for_log(self, text: str) -> str:
        """``text`` without any secret: the endpoint stays, for whoever runs the server."""
        return str(redacted(text, secrets=self._secrets))

    def for_client(self, text: str) -> str:
        """``text`` without any secret and without anything that says where a model lives."""
        text = self.for_log(text)
        text = _WHERE.sub("", text)
        for endpoint in self._endpoints:
            text = text.replace(endpoint, UPSTREAM)
        for host in self._hosts:
            text = host.sub(UPSTREAM, text)
        return text

    def error(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """An ``{"error": {...}}`` payload with its message made fit for a client."""
        error = dict(payload["error"])
        error["message"] = self.for_client(str(error.get("message")))
        return {"error": error}


# upstream status -> (status for the client, code): the table in README.md ("Server").
_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "upstream_rejected_request"),
    401: (502, "upstream_auth_failed"),
    403: (502, "upstream_auth_failed"),
    404: (502, "upstream_not_found"),
    408: (504, "upstream_timeout"),
    413: (400, "upstream_rejected_request"),
    422: (400, "upstream_rejected_request"),
    429: (429, "upstream_rate_limited"),
    503: (503, "upstream_unavailable"),
    504: (504, "upstream_timeout"),
}
# Statuses whose Retry-After a client's backoff needs: forwarded as the upstream gave it.
_RETRY_AFTER_STATUSES = (429, 503)


def _for_status(upstream_status: int) -> tuple[int, str]:
    mapped = _BY_STATUS.get(upstream_status)
    if mapped is not None:
        return mapped
    return (502, "upstream_server_error") if upstream_status >= 500 else (502, "upstream_error")


def upstream_http_error(
    payload: Mapping[str, Any], cause: BaseException | None, redactor: Redactor
) -> HttpError:
    """A model failure before the first token, as the HTTP error the client gets instead.

    ``payload`` is the stream's error chunk; ``cause`` the provider's exception behind it, when
    known (its class tells a timeout from a refused connection; it carries ``Retry-After``).
    """
    error = payload["error"]
    message = redactor.for_client(str(error.get("message")))
    code = error.get("code")
    headers: dict[str, str] = {}
    upstream_status: int | None = None
    if isinstance(cause, DownstreamError):
        upstream_status = cause.status
    elif cause is None and error.get("type") == "downstream_error" and isinstance(code, int):
        upstream_status = code
    if upstream_status is not None:
        status, kind = _for_status(upstream_status)
        message = f"the upstream model server answered {upstream_status}: {message}"
        retry = cause.retry_after_s if isinstance(cause, DownstreamError) else None
        if retry is not None and status in _RETRY_AFTER_STATUSES:
            headers["Retry-After"] = str(math.ceil(retry))
    elif isinstance(cause, ProviderTimeoutError):
        status, kind = 504, "upstream_timeout"
    elif isinstance(cause, ProviderConnectionError):
        status, kind = 502, "upstream_unreachable"
    elif isinstance(cause, ProviderProtocolError):
        status, kind = 502, "upstream_protocol_error"
    else:
        status, kind = 502, "upstream_error"  # an in-stream error object, a provider's bug
    extra = {} if upstream_status is None else {"upstream_status": upstream_status}
    return HttpError(
        status, message, type="upstream_error", code=kind, headers=headers, extra=extra
    )
