"""Which model engines exist, and the checks of each engine's ``parameters``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from cattrs.errors import BaseValidationError

from ._converter import Path, make_converter, structure_problems, type_name
from ._secrets import Parameters

__all__ = ["OpenAISettings", "SUPPORTED_ENGINES", "engine_parameter_problems"]

SUPPORTED_ENGINES = ("huggingface_pipeline", "openai", "scripted")


@attrs.frozen(kw_only=True)
class OpenAISettings:
    """``engine: openai``: how railstream talks to an OpenAI-compatible server.

    These keys of ``parameters`` are railstream's; every other key (temperature, max_tokens,
    stop, seed, ...) is sent in the request body as it is.
    """

    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = attrs.field(default=None, repr=False)  # never shown
    stream_usage: bool = True  # false for servers that reject stream_options
    connect_timeout_s: float = 10.0
    first_token_timeout_s: float = 60.0
    idle_timeout_s: float = 30.0
    # A whole (non-streamed) reply arrives only once it is generated: a 1,000-token reply at
    # 15 tokens/s takes 67 s, so neither the first-token nor the idle limit can time it.
    request_timeout_s: float = 600.0
    max_event_bytes: int = 1 << 20  # an SSE line or event longer than this ends the reply
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    # As the openai SDK: a guard server runs hundreds of streams at once, each on its own
    # connection; a smaller pool would queue the rest silently behind it.
    max_connections: int = 1000
    max_keepalive_connections: int = 1000  # httpx closes idle ones after 5 s anyway
    body: Mapping[str, Any] = attrs.field(factory=Parameters, converter=Parameters)

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> OpenAISettings:
        """Settings from a model's (validated) parameters."""
        known = {k: v for k, v in params.items() if k in _OPENAI_KEYS}
        body = {k: v for k, v in params.items() if k not in _OPENAI_KEYS}
        return attrs.evolve(_CONVERTER.structure(known, cls), body=body)


_OPENAI_KEYS = frozenset(f.name for f in attrs.fields(OpenAISettings)) - {"body"}
# The request body keys railstream sets itself.
_RESERVED = {
    "model": "set it as the model's model:",
    "messages": "",
    "stream": "",
    "stream_options": "use stream_usage",
}
_CONVERTER = make_converter()


def _openai_problems(params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for key in params:
        if key in _RESERVED:
            hint = _RESERVED[key]
            yield (key,), "is set by railstream" + (f" ({hint})" if hint else "")
    if params.get("n", 1) != 1:
        yield ("n",), "railstream streams one choice: n must be 1"
    known = {k: v for k, v in params.items() if k in _OPENAI_KEYS}
    try:
        settings = _CONVERTER.structure(known, OpenAISettings)
    except BaseValidationError as exc:
        yield from structure_problems(exc)
        return
    url = urlsplit(settings.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        yield (
            ("base_url",),
            f"expected an http(s) URL such as http://127.0.0.1:8000/v1, got {settings.base_url!r}",
        )
    for name in (
        "connect_timeout_s",
        "first_token_timeout_s",
        "idle_timeout_s",
        "request_timeout_s",
    ):
        if getattr(settings, name) <= 0:
            yield (name,), f"must be > 0, got {getattr(settings, name)}"
    for name in ("max_retries", "retry_backoff_s", "max_keepalive_connections"):
        if getattr(settings, name) < 0:
            yield (name,), f"must be >= 0, got {getattr(settings, name)}"
    for name in ("max_connections", "max_event_bytes"):
        if getattr(settings, name) < 1:
            yield (name,), f"must be >= 1, got {getattr(settings, name)}"


_SCRIPTED_KEYS = {"responses", "delay_ms", "report_usage"}


def _scripted_problems(params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for key in params:
        if key not in _SCRIPTED_KEYS:
            yield (key,), "unknown key (scripted takes responses, delay_ms, report_usage)"
    responses = params.get("responses")
    if responses is None:
        yield ("responses",), "required for engine scripted: a list of replies"
    elif not isinstance(responses, list) or not responses:
        yield ("responses",), f"expected a non-empty list, got {type_name(responses)}"
    else:
        for i, reply in enumerate(responses):
            if isinstance(reply, str):
                if not reply:
                    yield ("responses", i), "a reply must not be empty"
            elif isinstance(reply, list):
                if not reply:
                    yield ("responses", i), "a list of tokens must not be empty"
                for j, token in enumerate(reply):
                    if not isinstance(token, str) or not token:
                        yield ("responses", i, j), "a token must be a non-empty string"
            else:
                yield (
                    ("responses", i),
                    f"expected a string or a list of tokens, got {type_name(reply)}",
                )
    delay = params.get("delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        yield ("delay_ms",), f"expected a number, got {type_name(delay)}"
    elif delay < 0:
        yield ("delay_ms",), f"must be >= 0, got {delay}"
    if not isinstance(params.get("report_usage", True), bool):
        yield ("report_usage",), "expected true or false"


def engine_parameter_problems(engine: str, params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    """Problems with ``parameters`` for ``engine``, as paths relative to ``parameters``."""
    if engine == "scripted":
        yield from _scripted_problems(params)
    elif engine == "openai":
        yield from _openai_problems(params)
    elif engine == "huggingface_pipeline":
        yield from _huggingface_problems(params)


def _huggingface_problems(params: Mapping[str, Any]) -> Iterator[tuple[Path, str]]:
    for key in ("streamer", "stopping_criteria", "return_full_text"):
        if key in params:
            yield (key,), "is set by railstream"
    # Where the model is loaded, as transformers' pipeline() takes it. Whether the device
    # exists is known only where the model loads (LLMRails(config)), which says so there.
    device = params.get("device")
    if device is not None and (isinstance(device, bool) or not isinstance(device, int | str)):
        yield (
            ("device",),
            f"expected a device such as cpu, cuda:0 or an accelerator index, got {type_name(device)}",
        )
    device_map = params.get("device_map")
    if device_map is not None and not isinstance(device_map, str | Mapping):
        yield (
            ("device_map",),
            f"expected a strategy such as auto, or a mapping of modules to devices, got {type_name(device_map)}",
        )
    if device is not None and device_map is not None:
        # transformers lets device override device_map, "most likely" misplacing the model.
        yield ("device_map",), "set device or device_map, not both"
