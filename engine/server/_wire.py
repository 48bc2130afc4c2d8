"""The OpenAI wire format: request bodies in, chat.completion(.chunk) objects and errors out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from railstream.stages import InvalidRequestError, RailstreamError

__all__ = [
    "CompletionRequest",
    "HttpError",
    "chunk",
    "completion",
    "error_body",
    "known_usage",
    "parse_request",
    "sse",
]

# Sampling parameters passed on to the model as llm_params.
_PASSED_ON = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "response_format",
        # Tools go to the model; its calls come back whole once the reply's text has passed.
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
# Accepted and not needed here.
_ACCEPTED = frozenset(
    {"user", "n", "messages", "stream", "stream_options", "model", "config_id", "guardrails"}
    # What only describes the request (OpenAI's own bookkeeping): accepted, and not sent on.
    | {"metadata", "store", "service_tier", "logprobs", "top_logprobs"}
)


class HttpError(RailstreamError):
    """An HTTP error answer with an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """``extra``: more fields of the error object (an upstream's status)."""
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type=type, param=param, code=code)
        self.body["error"].update(extra or {})
        self.headers = dict(headers or {})


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | int | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@attrs.frozen(kw_only=True)
class CompletionRequest:
    messages: tuple[dict[str, Any], ...]
    stream: bool
    include_usage: bool
    model: str | None
    config_id: str | None
    llm_params: dict[str, Any]
    # NeMo's guardrails.options (generation options: log, llm_params, output_vars), unparsed.
    options: dict[str, Any] | None = None


def _bad(message: str, param: str | None = None) -> HttpError:
    return HttpError(400, message, param=param)


# Deeper than any chat request; the JSON parser and everything after it recurse, so a deeper
# body must be refused while parsing, before any of them runs out of stack.
MAX_JSON_DEPTH = 64


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON: refused here, they would not
    # fail later, at the model's end, as an upstream error.
    raise ValueError(f"{name} is not a JSON value")


def _check_json(body: Any) -> None:
    """Refuse what parses but is no valid request: nesting deeper than ``MAX_JSON_DEPTH``, and
    strings no UTF-8 can carry (a lone surrogate escape, ``"\\ud800"``)."""
    stack = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise _bad("the request body has a lone surrogate in a string") from None
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _bad(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
            items = [*value, *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


def parse_request(raw: bytes) -> CompletionRequest:
    """The request body, checked: a clear 400 for anything a client could get wrong."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise _bad(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"the request body is not valid JSON: {exc}") from None
    _check_json(body)
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    unknown = sorted(k for k in body if k not in _PASSED_ON and k not in _ACCEPTED)
    if unknown:
        raise _bad(f"unsupported parameter: {unknown[0]}", unknown[0])
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: expected a non-empty list of messages", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream: expected true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise _bad('stream_options: expected {"include_usage": true|false}', "stream_options")
    if body.get("n", 1) != 1:
        raise _bad("n: railstream returns one choice; n must be 1", "n")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") not in (None, 0):
        # Log probabilities are of tokens railstream may hold back or block: not returned.
        raise _bad("logprobs: railstream does not return log probabilities", "logprobs")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("model: expected a string", "model")
    config_id = body.get("config_id")
    guardrails = body.get("guardrails")
    generation_options = None
    if guardrails is not None:
        config_id, generation_options, context = _guardrails(guardrails, config_id)
        if context is not None:
            # NeMo's guardrails.context: the variables of a context message, for the actions.
            messages = [{"role": "context", "content": context}, *messages]
    if config_id is not None and not isinstance(config_id, str):
        raise _bad("config_id: expected a string", "config_id")
    return CompletionRequest(
        options=generation_options,
        messages=tuple(messages),
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        model=model,
        config_id=config_id,
        llm_params={k: v for k, v in body.items() if k in _PASSED_ON},
    )


# NeMo's guardrails object, and what railstream answers to the keys it does not take.
_GUARDRAILS_KEYS = {"config_id", "config_ids", "options", "context"}
_GUARDRAILS_REFUSED = {
    "thread_id": (
        "railstream keeps no conversation between requests: send the whole conversation in messages"
    ),
    "state": "railstream keeps no conversation state: send the whole conversation in messages",
}


def _guardrails(
    guardrails: object, config_id: object
) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
    """NeMo's ``guardrails`` object: ``(config_id, options, context)``."""
    if not isinstance(guardrails, dict):
        raise _bad("guardrails: expected an object (config_id, options, context)", "guardrails")
    for key, why in _GUARDRAILS_REFUSED.items():
        if guardrails.get(key) is not None:
            raise _bad(f"guardrails.{key}: {why}", f"guardrails.{key}")
    unknown = sorted(set(guardrails) - _GUARDRAILS_KEYS - set(_GUARDRAILS_REFUSED))
    if unknown:
        raise _bad(f"guardrails.{unknown[0]}: unknown key", f"guardrails.{unknown[0]}")
    config_id = config_id or guardrails.get("config_id")
    config_ids = guardrails.get("config_ids")
    if config_ids is not None:
        if not isinstance(config_ids, list) or not all(isinstance(c, str) for c in config_ids):
            raise _bad(
                "guardrails.config_ids: expected a list of config ids", "guardrails.config_ids"
            )
        if config_id is not None:
            raise _bad(
                "guardrails: give config_id or config_ids, not both (as NeMo)",
                "guardrails.config_ids",
            )
        if len(config_ids) != 1:
            raise _bad(
                "guardrails.config_ids: railstream serves one config per request; combining "
                "configs is not supported: give one id",
                "guardrails.config_ids",
            )
        config_id = config_ids[0]
    options = guardrails.get("options")
    if options is not None and not isinstance(options, dict):
        raise _bad(
            "guardrails.options: expected an object (generation options)", "guardrails.options"
        )
    context = guardrails.get("context")
    if context is not None and not isinstance(context, dict):
        raise _bad(
            "guardrails.context: expected an object of context variables", "guardrails.context"
        )
    return config_id, options, context


def invalid_messages(exc: InvalidRequestError) -> HttpError:
    return _bad(str(exc), exc.param or "messages")


@attrs.frozen
class Ids:
    """What every chunk of one reply shares."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> Ids:
        return cls(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model)


def chunk(ids: Ids, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def known_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """The counts that are known, and only those: a count nobody reported is absent.

    Never null (the OpenAI schema has integers there, and SDKs turn a null into 0, so cost
    tracking would show the stream as free), never a made-up 0. The openai client reads an
    absent count as None.
    """
    usage = usage or {}
    return {
        key: usage[key]
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        if usage.get(key) is not None
    }


def usage_chunk(ids: Ids, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [],
        "usage": usage,
    }


def completion(
    ids: Ids,
    content: str,
    finish_reason: str,
    usage: dict[str, Any],
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        # As OpenAI: no text is null, and the calls carry no stream index.
        message = {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [{k: v for k, v in c.items() if k != "index"} for c in tool_calls],
        }
    return {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + b"\n\n"
