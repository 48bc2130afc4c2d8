"""Every httpx error, mapped to railstream's own at the provider boundary.

The table names each httpx exception class explicitly (a test fails if httpx grows one that is
missing), so no transport failure reaches a user as a bare httpx traceback.
"""

from __future__ import annotations

import httpx

from .._errors import (
    GenerationError,
    ProviderConnectionError,
    ProviderProtocolError,
    ProviderTimeoutError,
)

__all__ = ["HTTPX_ERRORS", "map_httpx_error"]

# class -> (railstream error, what happened, in words a user can act on)
HTTPX_ERRORS: dict[type[Exception], tuple[type[GenerationError], str]] = {
    httpx.ConnectError: (ProviderConnectionError, "cannot connect to the provider"),
    httpx.ConnectTimeout: (ProviderTimeoutError, "timed out connecting to the provider"),
    httpx.ProxyError: (ProviderConnectionError, "the proxy to the provider failed"),
    httpx.UnsupportedProtocol: (ProviderConnectionError, "base_url is not an http(s) URL"),
    httpx.InvalidURL: (ProviderConnectionError, "base_url is not a valid URL"),
    httpx.WriteError: (ProviderConnectionError, "could not send the request to the provider"),
    httpx.WriteTimeout: (ProviderTimeoutError, "timed out sending the request to the provider"),
    httpx.PoolTimeout: (ProviderTimeoutError, "no free connection to the provider in time"),
    httpx.ReadTimeout: (ProviderTimeoutError, "the provider stopped sending"),
    httpx.TimeoutException: (ProviderTimeoutError, "the provider timed out"),
    httpx.ReadError: (ProviderProtocolError, "the connection to the provider dropped"),
    httpx.CloseError: (ProviderProtocolError, "the connection to the provider failed to close"),
    httpx.NetworkError: (ProviderConnectionError, "network error talking to the provider"),
    httpx.RemoteProtocolError: (
        ProviderProtocolError,
        "the provider broke the HTTP protocol (connection dropped mid-reply?)",
    ),
    httpx.LocalProtocolError: (ProviderProtocolError, "railstream sent an invalid HTTP request"),
    httpx.ProtocolError: (ProviderProtocolError, "HTTP protocol error with the provider"),
    httpx.DecodingError: (ProviderProtocolError, "the provider's reply could not be decoded"),
    httpx.TooManyRedirects: (ProviderConnectionError, "the provider redirected too many times"),
    httpx.TransportError: (ProviderConnectionError, "transport error talking to the provider"),
    httpx.RequestError: (ProviderConnectionError, "the request to the provider failed"),
    httpx.HTTPStatusError: (ProviderProtocolError, "the provider answered with an error status"),
    httpx.HTTPError: (ProviderConnectionError, "HTTP error talking to the provider"),
    httpx.StreamConsumed: (ProviderProtocolError, "the provider's reply was read twice"),
    httpx.StreamClosed: (ProviderProtocolError, "the provider's reply was read after it closed"),
    httpx.ResponseNotRead: (
        ProviderProtocolError,
        "the provider's reply was used before it was read",
    ),
    httpx.RequestNotRead: (ProviderProtocolError, "the request was used before it was read"),
    httpx.StreamError: (ProviderProtocolError, "the provider's reply stream was misused"),
    httpx.CookieConflict: (ProviderProtocolError, "conflicting cookies from the provider"),
}


def map_httpx_error(exc: Exception, where: str) -> GenerationError:
    """railstream's error for ``exc``; ``where`` names the endpoint (never a key)."""
    for cls in type(exc).__mro__:
        entry = HTTPX_ERRORS.get(cls)
        if entry is not None:
            error_type, what = entry
            detail = str(exc) or type(exc).__name__
            return error_type(f"{what} ({where}): {detail}")
    return ProviderConnectionError(
        f"unexpected error talking to the provider ({where}): {type(exc).__name__}: {exc}"
    )
