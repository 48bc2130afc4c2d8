"""railstream behind a real LiteLLM proxy with fallbacks, and read by the clients people use.

A gateway with fallbacks sends a request to its fallback model when the first one fails. A
block must not look like a failure to it, at any point of the reply: else the gateway streams
the fallback model's reply, which no rail has seen. The proxy here is LiteLLM's own
(`litellm --config`, installed from the registry); its fallback is a `mock_response` model,
which needs no network. A config whose model cannot be reached shows the fallback is live.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .helpers import DEMO
from .server_process import ServerProcess

UNGUARDED = "UNGUARDED fallback reply sk-live-999999999"
REFUSAL = "I'm sorry, I can't respond to that."
# Blocked at its first window: not a character of it is released.
EARLY = "sk-live-4f9a1c77e2b0 is the key you asked for, keep it safe."
# Blocked after the first windows passed: some text is out when the block comes.
MID = "Sure, here is the deployment key you asked for: sk-live-4f9a1c77e2b0 please keep it safe."
MID_RELEASED = "Sure, here is the deployment "

# The rail fails (fails closed) on the window that reaches "boom", after text was released.
FAILS_MID = "All good so far, these words pass the rail, and then boom it fails."
FAILS_MID_RELEASED = "All good so far, these words pass "

# What the proxy sees of railstream; every model has the fallback below.
GUARDED = ("early", "mid", "down", "fails-mid")

FAILING_RAIL = """
import re

from railstream import action

SECRET = re.compile(r"\\bsk-[A-Za-z0-9-]{8,}")


@action(blocking=False)
def check_no_secrets(bot_message: str) -> bool:
    if "boom" in bot_message:
        raise RuntimeError("the rail broke")
    return SECRET.search(bot_message) is None
"""


def _config(folder: Path, reply: str, base_url: str | None = None) -> None:
    """The demo's rail on one scripted reply, or on an OpenAI model at ``base_url``."""
    shutil.copytree(DEMO, folder)
    config = folder / "config.yml"
    text = config.read_text()
    start, end = text.index("models:"), text.index("streaming: true")
    if base_url is None:
        model = (
            "models:\n  - type: main\n    engine: scripted\n    model: demo-model\n"
            f"    parameters:\n      responses: [{json.dumps(reply)}]\n\n"
        )
    else:
        model = (
            "models:\n  - type: main\n    engine: openai\n    model: gone\n"
            f"    parameters:\n      base_url: {base_url}\n      max_retries: 0\n\n"
        )
    config.write_text(text[:start] + model + text[end:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiteLLMProxy:
    """`litellm --config` as a subprocess, its models pointing at railstream."""

    def __init__(self, railstream_url: str, folder: Path) -> None:
        self.key = "sk-proxy-" + secrets.token_hex(16)
        models: list[dict[str, Any]] = [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name.removesuffix('-cp')}",
                    "api_base": f"{railstream_url}/v1",
                    "api_key": "unused",
                },
            }
            for name in (*GUARDED, "early-cp")
        ]
        models.append(
            {
                "model_name": "backup",
                "litellm_params": {"model": "openai/backup", "mock_response": UNGUARDED},
            }
        )
        config = {
            "model_list": models,
            "router_settings": {
                "fallbacks": [{name: ["backup"]} for name in GUARDED],
                # What this setting is for: a refused reply goes to another model.
                "content_policy_fallbacks": [{"early-cp": ["backup"]}],
                "num_retries": 0,
            },
            "litellm_settings": {"num_retries": 0, "request_timeout": 30},
        }
        path = folder / "litellm.json"  # JSON is YAML
        path.write_text(json.dumps(config))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="litellm-proxy-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "litellm"),
                "--config",
                str(path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "1",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "LITELLM_MASTER_KEY": self.key,
                # No network here: the cost map on disk, not the one on GitHub.
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False",
            },
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 120  # a hang guard: start-up takes 10-20 s here
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the LiteLLM proxy exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the LiteLLM proxy did not start:\n{self.log()}")

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def railstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    configs = tmp_path_factory.mktemp("gateway-configs")
    _config(configs / "early", EARLY)
    _config(configs / "mid", MID)
    _config(configs / "down", "", base_url=f"http://127.0.0.1:{_free_port()}/v1")
    _config(configs / "fails-mid", FAILS_MID)
    (configs / "fails-mid" / "actions.py").write_text(FAILING_RAIL)
    server = ServerProcess(configs)
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def proxy(
    railstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiteLLMProxy]:
    proxy = LiteLLMProxy(railstream.url, tmp_path_factory.mktemp("litellm"))
    yield proxy
    proxy.stop()


def _stream(client: openai.OpenAI, model: str) -> tuple[str, list[str | None], list[str]]:
    """The text, each choice's finish_reason, and the models that answered."""
    text, finishes, models = "", [], []
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        models.append(chunk.model)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return text, finishes, models


# behind the proxy


def test_the_fallback_is_live_a_model_that_fails_is_answered_by_it(proxy: LiteLLMProxy) -> None:
    """The control: railstream's model cannot be reached (a 502), and the proxy falls back.
    A proxy that never fell back would pass every test below for no reason."""
    text, finishes, _ = _stream(proxy.client(), "down")
    assert text == UNGUARDED
    assert finishes == ["stop"]


def test_a_rail_that_fails_mid_stream_is_a_failure_the_proxy_reports_as_one(
    proxy: LiteLLMProxy,
) -> None:
    """A rail that fails closed after text was released: an error event, which the proxy
    passes on as a failure (its fallback does not take over a reply already under way), and
    the openai client raises. What failed is told apart from a block."""
    with pytest.raises(openai.APIError) as failed:
        _stream(proxy.client(), "fails-mid")
    assert "the rail broke" in str(failed.value)
    assert UNGUARDED not in str(failed.value)


@pytest.mark.parametrize(
    ("model", "released"),
    [pytest.param("early", "", id="before-any-text"), pytest.param("mid", MID_RELEASED, id="mid")],
)
def test_a_streamed_block_behind_litellm_is_not_answered_by_the_fallback(
    proxy: LiteLLMProxy, model: str, released: str
) -> None:
    """A block, before any text or mid-reply, reaches the client through the proxy as the
    reply's end (content_filter) and nothing else: the fallback model is never asked."""
    text, finishes, models = _stream(proxy.client(), model)
    assert text == released
    assert finishes == ["content_filter"]
    assert set(models) == {model}
    assert "sk-live" not in text


@pytest.mark.parametrize("model", ["early", "mid"])
def test_a_whole_blocked_reply_behind_litellm_is_not_answered_by_the_fallback(
    proxy: LiteLLMProxy, model: str
) -> None:
    reply = proxy.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == REFUSAL
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.model == model


def test_content_policy_fallbacks_send_a_whole_blocked_reply_to_the_fallback(
    proxy: LiteLLMProxy,
) -> None:
    """What LiteLLM's ``content_policy_fallbacks`` are for (README says so): a reply that
    ends in content_filter is asked again of the fallback model, when not streamed. A model
    named there must be guarded too."""
    reply = proxy.client().chat.completions.create(
        model="early-cp", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == UNGUARDED
    text, finishes, _ = _stream(proxy.client(), "early-cp")  # streamed: the block stands
    assert (text, finishes) == ("", ["content_filter"])


# what each client reports for a block, talking to railstream directly


def test_langchain_openai_reports_a_block_as_finish_reason_content_filter(
    railstream: ServerProcess,
) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{railstream.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        model="mid",
        max_retries=0,
        stream_usage=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pieces = list(llm.stream("hi"))
    whole = pieces[0]
    for piece in pieces[1:]:
        whole += piece  # type: ignore[assignment]
    assert whole.content == MID_RELEASED
    assert whole.response_metadata["finish_reason"] == "content_filter"
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] > 0
    plain = llm.invoke("hi")
    assert plain.content == REFUSAL
    assert plain.response_metadata["finish_reason"] == "content_filter"


def test_the_litellm_sdk_reports_a_block_as_finish_reason_content_filter(
    railstream: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    text, finishes = "", []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for chunk in litellm.completion(
            model="openai/mid",
            api_base=f"{railstream.url}/v1",
            api_key="unused",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            num_retries=0,
        ):
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].finish_reason:
                finishes.append(chunk.choices[0].finish_reason)
    assert text == MID_RELEASED
    assert finishes == ["content_filter"]
