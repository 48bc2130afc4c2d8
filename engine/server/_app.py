"""The OpenAI-compatible HTTP app (starlette on trio): chat completions, configs, models.

:class:`App` holds what the endpoints share (the configs, the limits, the shutdown, the
metrics); its methods are the endpoints. A streamed reply's headers go out only with its first
token, so a model that fails before it gets a real HTTP status; after that the reply is an
:class:`~railstream.server._sse_reply.SSEReply`. A client that disconnects cancels its pipeline
(and so the model's HTTP request) at once, from the moment its request has been read, whether
it asked for a stream or not. On SIGTERM or SIGINT (see
:class:`~railstream.server._shutdown.Shutdown`) new requests get a 503 while those in flight
have the grace period to finish.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from railstream.facade import (
    GenerationLog,
    GenerationOptions,
    GenerationResponse,
    RailsStream,
    parse_options,
)
from railstream.stages import (
    GenerationError,
    InvalidRequestError,
    RailstreamError,
    StreamError,
    StreamingNotSupportedError,
)

from ._disconnect import ClientGone, unless_client_leaves
from ._limits import ServerLimits, authorize, authorized, read_body, take_slot
from ._observe import Metrics, RequestRecord
from ._outcomes import MODEL_FAILURES, log_failure, rejection
from ._registry import ConfigRegistry
from ._shutdown import Shutdown, shutting_down
from ._sse_reply import SSEReply
from ._upstream import upstream_http_error
from ._wire import (
    CompletionRequest,
    HttpError,
    Ids,
    completion,
    error_body,
    invalid_messages,
    known_usage,
    parse_request,
)

__all__ = ["App", "create_app"]

logger = logging.getLogger("railstream.server")


def create_app(
    registry: ConfigRegistry,
    limits: ServerLimits | None = None,
    shutdown: Shutdown | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The ASGI app. With ``metrics`` (prometheus-client installed), ``GET /metrics`` serves
    them, behind the bearer token when the server has one."""
    return App(registry, limits, shutdown, metrics).asgi()


class App:
    """The server's endpoints, over its configs, its limits, its shutdown and its metrics."""

    def __init__(
        self,
        registry: ConfigRegistry,
        limits: ServerLimits | None = None,
        shutdown: Shutdown | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits or ServerLimits()
        self.shutdown = shutdown or Shutdown()
        self.metrics = metrics
        self.redactor = registry.redactor
        if metrics is not None:
            # The streams being written now: their channels, at each scrape.
            metrics.watch_channels(lambda: [reply.stream for reply in list(self.shutdown.replies)])
            for config_id in registry.ids:
                registry.rails(config_id).add_observer(
                    functools.partial(metrics.record_ledger, config_id)
                )

    def asgi(self) -> Starlette:
        """The starlette app routing to these endpoints (``/metrics`` only with metrics)."""
        routes: list[Route] = []
        if self.metrics is not None:
            routes.append(Route("/metrics", self.metrics_endpoint, methods=["GET"]))
        routes += [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/v1/rails/configs", self.configs, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
        ]
        handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
            HttpError: self.http_error,
            HTTPException: self.starlette_error,
            RailstreamError: self.internal_error,
        }
        middleware = []
        if self.limits.cors_origins:
            # Preflights are answered here, before any route or token check (a browser sends
            # no Authorization on a preflight); the real request is checked as any other.
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=list(self.limits.cors_origins),
                    allow_methods=["GET", "POST"],
                    allow_headers=["Authorization", "Content-Type"],
                    max_age=600,
                )
            )
        return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)

    async def healthz(self, request: Request) -> Response:
        # Health is for anyone (a load balancer has no token); what is served is not.
        body: dict[str, Any] = {"status": "ok"}
        if authorized(self.limits, request):
            body["configs"] = self.registry.ids
        return _json(body)

    async def configs(self, request: Request) -> Response:
        authorize(self.limits, request)
        return _json([{"id": config_id} for config_id in self.registry.ids])

    async def models(self, request: Request) -> Response:
        authorize(self.limits, request)
        data = [
            {"id": i, "object": "model", "created": 0, "owned_by": "railstream"}
            for i in self.registry.ids
        ]
        return _json({"object": "list", "data": data})

    async def metrics_endpoint(self, request: Request) -> Response:
        authorize(self.limits, request)
        assert self.metrics is not None
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    async def chat_completions(self, request: Request) -> Response | SSEReply | ClientGone:
        record = RequestRecord()
        try:
            return await self._chat_completions(request, record)
        except HttpError as exc:
            record.status = exc.status
            record.outcome, record.error = rejection(exc)
            raise
        finally:
            if not record.handed_over:
                record.finish(self.metrics)

    async def _chat_completions(
        self, request: Request, record: RequestRecord
    ) -> Response | SSEReply | ClientGone:
        authorize(self.limits, request)
        # The body first, then a slot: a client that sends its body slowly, or never finishes
        # it, holds a connection until --body-timeout, never a slot (enough of them would
        # otherwise have every other client answered 503).
        body = await read_body(self.limits, request)
        done = take_slot(self.limits)
        try:
            if self.shutdown.begun:
                # Its body came in after the signal (the listener is closed, so nothing newer
                # can): no model has been asked yet, and the client can retry elsewhere.
                raise shutting_down()
            parsed = parse_request(body)
            record.stream = parsed.stream
            config_id, rails = self.registry.resolve(parsed.config_id, parsed.model)
            record.config_id = config_id
            ids = Ids.new(parsed.model or config_id)

            async def answer() -> Response | SSEReply:
                if not parsed.stream:
                    return await self._complete(rails, config_id, parsed, ids, record)
                return await self._start_stream(rails, config_id, parsed, ids, done, record)

            async def discard(reply: Response | SSEReply) -> None:
                if isinstance(reply, SSEReply):
                    await reply.aclose()

            try:
                reply = await unless_client_leaves(request.receive, answer, discard, self.shutdown)
            except HttpError:
                raise
            except Exception as exc:
                # Never an opaque 500: the log says what broke, for whom.
                log_failure(self.redactor, f"config {config_id!r}: the request failed", exc)
                raise HttpError(
                    500,
                    "internal server error; the server's log has the details",
                    type="internal_error",
                ) from None
            if reply is None:
                logger.info("config %r: the client left; its generation was cancelled", config_id)
                record.outcome = "client_left"
                return ClientGone()
            # The reply frees the slot and logs the request once it has been sent.
            record.handed_over = isinstance(reply, SSEReply)
            return reply
        finally:
            if not record.handed_over:
                done()

    def _failed_upstream(
        self, config_id: str, payload: Mapping[str, Any], cause: BaseException | None
    ) -> HttpError:
        logger.warning(
            "config %r: the model failed before its first token: %s",
            config_id,
            self.redactor.for_log(str(payload["error"].get("message"))),
        )
        return upstream_http_error(payload, cause, self.redactor)

    async def _complete(
        self, rails: Any, config_id: str, parsed: CompletionRequest, ids: Ids, record: RequestRecord
    ) -> Response:
        try:
            asked = _client_options(parsed)
            result = await rails.generate_async(
                messages=list(parsed.messages),
                options={
                    "log": {"llm_calls": True, "activated_rails": True},
                    # The body's own parameters over those of guardrails.options.
                    "llm_params": {**(asked.llm_params if asked else {}), **parsed.llm_params},
                    "output_vars": asked.output_vars if asked else None,
                },
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        except GenerationError as exc:
            raise self._failed_upstream(config_id, exc.payload.to_dict(), exc) from None
        assert isinstance(result, GenerationResponse)
        assert result.log is not None
        main = next((c for c in result.log.llm_calls if c.task == "general"), None)
        stopped = next((r for r in result.log.activated_rails if r.stop), None)
        if main is not None:  # what the model reported, else what was counted
            record.tokens = (
                main.completion_tokens
                if main.completion_tokens is not None
                else main.streamed_tokens
            )
        if stopped is not None:
            blocked = stopped.additional_info.get("verdict") == "block"
            record.outcome, record.rail = ("blocked" if blocked else "rail_error"), stopped.name
        finish = (
            "content_filter"
            if stopped is not None
            else (main.finish_reason if main and main.finish_reason else "stop")
        )
        # As NeMo's server answers: which config; the log and the variables when asked.
        guardrails: dict[str, Any] = {"config_id": config_id}
        if stopped is not None:
            # Which rail ended the reply, as a streamed reply's last chunk says it.
            error = (
                StreamError.blocked(stopped.name)
                if stopped.additional_info.get("verdict") == "block"
                else StreamError.rail_failed(
                    stopped.name, str(stopped.additional_info.get("reason"))
                )
            )
            guardrails.update(self.redactor.error(error.to_dict()))
        if asked is not None and _wants_log(asked):
            guardrails["log"] = self._for_client(
                attrs.asdict(_asked_log(result.log, asked), recurse=True)
            )
        if result.output_data is not None:
            guardrails["output_data"] = self._for_client(result.output_data)
        usage = known_usage(
            {
                "prompt_tokens": main.prompt_tokens if main else None,
                "completion_tokens": main.completion_tokens if main else None,
                "total_tokens": main.total_tokens if main else None,
            }
        )
        assert not isinstance(result.response, str)  # asked with messages=
        message = result.response[0]
        reply = completion(ids, message["content"], finish, usage, message.get("tool_calls"))
        reply["guardrails"] = guardrails
        return _json(reply)

    def _for_client(self, value: Any) -> Any:
        """As JSON, with no secret and nothing that says where a model lives."""
        return json.loads(self.redactor.for_client(json.dumps(value, default=repr)))

    async def _start_stream(
        self,
        rails: Any,
        config_id: str,
        parsed: CompletionRequest,
        ids: Ids,
        done: Callable[[], None],
        record: RequestRecord,
    ) -> SSEReply:
        try:
            asked = _client_options(parsed)
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        if asked is not None and (_wants_log(asked) or asked.output_vars):
            raise HttpError(
                400,
                "guardrails.options: log and output_vars come with a whole reply (stream: "
                "false); a streamed reply's log is not sent",
                param="guardrails.options",
            )
        llm_params = {**(asked.llm_params if asked else {}), **parsed.llm_params}
        try:
            stream: RailsStream = rails.stream_async(
                messages=list(parsed.messages),
                options={"llm_params": llm_params},
                include_metadata=True,
            )
        except InvalidRequestError as exc:
            raise invalid_messages(exc) from None
        except StreamingNotSupportedError as exc:
            # The config serves whole replies only: the client can fix this (stream: false);
            # a 5xx would be retried, in vain.
            raise HttpError(
                400,
                f"config {config_id!r} cannot stream: {exc}",
                param="stream",
                code="streaming_not_supported",
            ) from None
        try:
            # Headers wait for the first token: a model that fails before it gets a real status.
            first = await stream.__anext__()
            assert isinstance(first, dict)
            error = first.get("error")
            if error is not None and error.get("type") in MODEL_FAILURES:
                raise self._failed_upstream(config_id, first, stream.error_cause)
        except BaseException:
            await stream.aclose()
            raise
        return SSEReply(
            stream,
            first,
            ids,
            parsed.include_usage,
            done,
            self.redactor,
            config_id,
            self.shutdown,
            self.limits.block_error_event,
            record,
            self.metrics,
        )

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _json(exc.body, exc.status, exc.headers)

    async def starlette_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        # starlette's headers kept: a 405's Allow (RFC 9110 15.5.6: a 405 MUST send one).
        return _json(error_body(str(exc.detail), type=kind), exc.status_code, exc.headers)

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        log_failure(self.redactor, f"{request.method} {request.url.path} failed", exc)
        return _json(error_body("internal server error", type="internal_error"), 500)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _client_options(parsed: CompletionRequest) -> GenerationOptions | None:
    """The client's ``guardrails.options``, read as ``generate_async``'s options are."""
    if parsed.options is None:
        return None
    try:
        return parse_options(parsed.options)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"guardrails.{exc}", param="guardrails.options") from None


def _wants_log(asked: GenerationOptions) -> bool:
    log = asked.log
    return log.activated_rails or log.llm_calls or log.internal_events or log.colang_history


def _asked_log(log: GenerationLog, asked: GenerationOptions) -> GenerationLog:
    """The parts of the log the client asked for (the server always keeps all of it)."""
    return attrs.evolve(
        log,
        activated_rails=log.activated_rails if asked.log.activated_rails else [],
        llm_calls=log.llm_calls if asked.log.llm_calls else [],
    )
