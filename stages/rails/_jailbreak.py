"""NeMo's ``jailbreak detection model`` rail: the user's message asked of a jailbreak
detection endpoint (NemoGuard JailbreakDetect, or NeMo's server); it fails closed."""

from __future__ import annotations

import json
import os
from typing import Literal

import httpx

from railstream.config_schema import JailbreakDetectionConfig, RailstreamError

from .._messages import LLMCall, Stopwatch, Usage, Window
from ..generation import HttpClients
from ._call_log import record_anyway
from ._context import RailContext, RailResult

__all__ = ["JailbreakDetectionError", "JailbreakDetectionModel"]


class JailbreakDetectionError(RailstreamError, Exception):
    """The jailbreak detection endpoint could not give a verdict (the rail fails closed)."""


# Enough for any verdict; a larger answer is not one.
_JAILBREAK_ANSWER_LIMIT = 65536


class JailbreakDetectionModel:
    """NeMo's ``jailbreak detection model``: the user's message, asked of NemoGuard
    JailbreakDetect (``nim_base_url`` + ``nim_server_endpoint``: ``{"input": text}``) or of
    NeMo's jailbreak detection server (``server_endpoint``: ``{"prompt": text}``); both answer
    ``{"jailbreak": bool, ...}``. An endpoint that fails, or answers anything else, makes the
    rail fail closed (NeMo lets the message through). The call is in the log, as NeMo logs it,
    task ``jailbreak_detection_model``."""

    name = "jailbreak detection model"
    action_name = "jailbreak_detection_model"
    side: Literal["input", "output"] = "input"

    def __init__(self, settings: JailbreakDetectionConfig, http: HttpClients) -> None:
        if settings.nim_base_url:
            base = settings.nim_base_url.rstrip("/")
            self._url = f"{base}/{settings.nim_server_endpoint.lstrip('/')}"
            self._field = "input"
            self._provider = "nim"
        elif settings.server_endpoint:
            self._url = settings.server_endpoint
            self._field = "prompt"
            self._provider = "jailbreak_detection_server"
        else:  # the loader refuses this config
            raise ValueError("jailbreak detection model needs nim_base_url or server_endpoint")
        key = settings.api_key
        if key is None and settings.api_key_env_var:
            key = os.environ.get(settings.api_key_env_var)
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._http = http

    async def check(self, window: Window, context: RailContext) -> RailResult:
        watch = Stopwatch()
        body = b""
        try:
            async with self._http.stream(
                "POST", self._url, json={self._field: window.text}, headers=self._headers
            ) as response:
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > _JAILBREAK_ANSWER_LIMIT:
                        raise JailbreakDetectionError(
                            f"{self._url} answered more than {_JAILBREAK_ANSWER_LIMIT} bytes"
                        )
            status = response.status_code
            if status != 200:
                raise JailbreakDetectionError(
                    f"{self._url} answered HTTP {status}: {body[:200].decode(errors='replace')}"
                )
            jailbreak = _read_jailbreak(body)
        except Exception as exc:
            await record_anyway(context, self._record(window, watch, "failed", body))
            if isinstance(exc, httpx.HTTPError):
                raise JailbreakDetectionError(f"{self._url}: {type(exc).__name__}: {exc}") from exc
            raise
        except BaseException:
            # Cut off (its rail's timeout, a parallel rail's block): in the log all the same.
            await record_anyway(context, self._record(window, watch, "cancelled", body))
            raise
        await context.record(self._record(window, watch, "completed", body))
        if jailbreak:
            return RailResult(allowed=False, reason="jailbreak", return_value={"jailbreak": True})
        return RailResult(allowed=True, return_value={"jailbreak": False})

    def _record(
        self,
        window: Window,
        watch: Stopwatch,
        status: Literal["completed", "cancelled", "failed"],
        body: bytes,
    ) -> LLMCall:
        return LLMCall(
            task=self.action_name,
            model=None,
            provider=self._provider,
            usage=Usage(),
            streamed_tokens=0,
            status=status,
            **watch.stamps(),
            window_index=window.index,
            prompt=window.text,
            completion=body.decode(errors="replace") if body else None,
        )


def _read_jailbreak(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        raise JailbreakDetectionError(f"the answer is not JSON: {body[:200]!r}") from None
    verdict = answer.get("jailbreak") if isinstance(answer, dict) else None
    if not isinstance(verdict, bool):
        raise JailbreakDetectionError(
            f'the answer has no "jailbreak": true|false: {body[:200].decode(errors="replace")}'
        )
    return verdict
