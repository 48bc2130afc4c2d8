"""The operator's config caps or pins what a caller may set per request (issue 13, item 8)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from railstream import InvalidRequestError, LLMRails, RailsConfig

from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess

HANG_GUARD_S = 60  # real seconds: a server in another process

POLICY = {"allow": ["temperature", "max_tokens", "stop"], "max": {"max_tokens": 256}}


def config_doc(base_url: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "up-model",
                "parameters": {
                    "base_url": base_url,
                    "max_retries": 0,
                    "temperature": 0.0,
                    "logit_bias": {"50256": -100},
                },
            }
        ],
        "request_parameters": POLICY,
    }


@pytest.mark.parametrize(
    ("params", "message", "param"),
    [
        pytest.param(
            {"logit_bias": {"1": 100}},
            "logit_bias: set by this config's operator, not per request "
            "(request_parameters.allow: temperature, max_tokens, stop)",
            "logit_bias",
            id="pinned",
        ),
        pytest.param(
            {"max_tokens": 4096},
            "max_tokens: at most 256 on this config (request_parameters.max), got 4096",
            "max_tokens",
            id="over-the-cap",
        ),
        pytest.param(
            {"max_tokens": "lots"},
            "max_tokens: expected a number, got 'lots'",
            "max_tokens",
            id="not-a-number",
        ),
    ],
)
def test_parameters_outside_the_policy_are_refused_at_call_time(
    params: dict[str, Any], message: str, param: str
) -> None:
    rails = LLMRails(
        RailsConfig.from_content(yaml_content=json.dumps(config_doc("http://127.0.0.1:1/v1")))
    )
    with pytest.raises(InvalidRequestError, match=rf"^{re.escape(message)}$") as raised:
        rails.stream_async(
            messages=[{"role": "user", "content": "hi"}], options={"llm_params": params}
        )
    assert raised.value.param == param


def test_a_bound_on_a_parameter_no_request_may_set_is_a_config_error() -> None:
    doc = {"request_parameters": {"allow": ["temperature"], "max": {"max_tokens": 10}}}
    with pytest.raises(
        ValueError,
        match=r"request_parameters\.max\.max_tokens: is not in request_parameters\.allow",
    ):
        RailsConfig.from_content(yaml_content=json.dumps(doc))


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


async def test_the_server_passes_allowed_parameters_and_refuses_the_rest(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "config.yml").write_text(json.dumps(config_doc(upstream.base_url)))
    upstream.default = Script(tokens=["fine"])
    server = ServerProcess(tmp_path)
    messages = [{"role": "user", "content": "hi"}]
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient(timeout=30) as client:
                url = f"{server.url}/v1/chat/completions"
                ok = await client.post(
                    url,
                    json={
                        "model": "up",
                        "messages": messages,
                        "temperature": 0.7,
                        "max_tokens": 200,
                    },
                )
                pinned = await client.post(
                    url, json={"model": "up", "messages": messages, "logit_bias": {"1": 100}}
                )
                capped = await client.post(
                    url,
                    json={
                        "model": "up",
                        "messages": messages,
                        "max_tokens": 100_000,
                        "stream": True,
                    },
                )
    finally:
        server.stop()
    assert ok.status_code == 200, ok.text
    sent = upstream.served[0].body
    assert (sent["temperature"], sent["max_tokens"]) == (0.7, 200)
    assert sent["logit_bias"] == {"50256": -100}  # the operator's, untouched
    assert pinned.status_code == 400
    assert pinned.json()["error"]["param"] == "logit_bias"
    assert capped.status_code == 400
    assert capped.json()["error"]["message"] == (
        "max_tokens: at most 256 on this config (request_parameters.max), got 100000"
    )
    assert len(upstream.served) == 1  # refused requests never reached the model
