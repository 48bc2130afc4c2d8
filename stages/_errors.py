"""railstream's exceptions, named after the situation the caller can act on: the whole tree.

Every exception railstream raises is a ``RailstreamError``; each class lives in the lowest layer
that raises it (the root and the config errors in ``railstream.config_schema``, the server's in
``railstream.server``), and the public ones are exported as ``railstream.X``.

    RailstreamError                  the root (config_schema)
    ├── ConfigError                  a config that cannot be used, every problem file:line (ValueError)
    ├── StreamingNotSupportedError   output rails configured, but not for streaming (ValueError)
    ├── RailNotFoundError            a flow with no built-in rail or action behind it (ValueError)
    ├── InvalidRequestError          bad messages, prompt or options (ValueError)
    ├── StreamStateError             a stream used out of turn: closed, or log read too early
    ├── GenerationError              the model failed; ``.payload`` is the in-stream error
    │   ├── DownstreamError          the provider answered with an error status (code: status)
    │   ├── ProviderConnectionError  the provider could not be reached, or the request not sent
    │   ├── ProviderTimeoutError     the provider went silent: no first token, or a stall
    │   └── ProviderProtocolError    the reply broke off, or was not what the API promises
    ├── StrictTypeError              a config value of the wrong type; becomes a ConfigError line (TypeError)
    ├── SSELimitError                an SSE line or event over its size bound; becomes a
    │                                ProviderProtocolError (ValueError)
    ├── RailResultError              a rail returned something that is not a verdict; the rail
    │                                fails closed (TypeError)
    ├── JailbreakDetectionError      the jailbreak endpoint's answer could not be used; the rail
    │                                fails closed
    ├── HttpError                    a request the server refuses: its status and OpenAI error body
    ├── ServerSetupError             the server cannot serve the config folder it was given
    └── CannotListenError            the server cannot listen on its address (OSError)

``ConfigIgnoredWarning`` (a ``UserWarning``) is warned, not raised: a NeMo key accepted and
ignored. Streams never raise for a block or a model failure: those arrive as an error chunk.
"""

from __future__ import annotations

from railstream.config_schema import RailstreamError

from ._messages import StreamError

__all__ = [
    "DownstreamError",
    "ProviderConnectionError",
    "ProviderProtocolError",
    "ProviderTimeoutError",
    "GenerationError",
    "InvalidRequestError",
    "RailNotFoundError",
    "RailstreamError",
    "StreamStateError",
    "StreamingNotSupportedError",
]


class StreamingNotSupportedError(RailstreamError, ValueError):
    """``stream_async`` was called on a config whose output rails do not stream (a
    ``ValueError``, as NeMo's is)."""


class RailNotFoundError(RailstreamError, ValueError):
    """An output flow names no built-in rail and no registered action."""


class InvalidRequestError(RailstreamError, ValueError):
    """The messages, prompt or options of a call are not usable; ``param`` names the field,
    where one is to blame (the server puts it in its 400's error body)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class StreamStateError(RailstreamError):
    """A stream was used in a state that does not allow it (closed, or not finished)."""


class GenerationError(RailstreamError):
    """The model failed to produce its reply.

    ``payload`` is the in-stream error (``generation_error``) that a stream shows instead.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def payload(self) -> StreamError:
        return StreamError(
            message=self.detail, type="generation_error", param=None, code="generation_failed"
        )


class DownstreamError(GenerationError):
    """The provider answered with an HTTP error; ``status`` is its code.

    ``retry_after_s``: how long the provider asked callers to wait (its ``Retry-After``), if it
    said, so that a caller's backoff (or a server's client's) is not blind.
    """

    def __init__(self, status: int, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def payload(self) -> StreamError:
        return StreamError(
            message=self.detail, type="downstream_error", param=None, code=self.status
        )


class ProviderConnectionError(GenerationError):
    """The provider could not be reached (refused, DNS, TLS), or the request not sent."""


class ProviderTimeoutError(GenerationError):
    """The provider sent nothing for too long: before its first token, or between tokens."""


class ProviderProtocolError(GenerationError):
    """The reply broke off mid-way, or was not the OpenAI wire format (malformed SSE/JSON)."""
