"""Keys are never shown: not in a repr or str of the config, its models or providers, not in
what an action that logs its config prints, not in a log record or an error. Each check uses
a key that is really in use (the server receives it), so a test cannot pass by the key having
been dropped."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio
import trio.testing

from railstream import LLMRails, RailsConfig

from .helpers import HANG_GUARD_S, collect
from .openai_server import FakeOpenAI, Script

KEY = "sk-live-LEAKCHECK-0123456789"
PASSWORD = "hunter2-LEAKCHECK"


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def keyed_config(base_url: str, *, url_password: bool = False) -> RailsConfig:
    # (httpx turns a URL's user:password into Basic auth, in place of the Bearer key: so the
    # password is tried only where no server checks the key.)
    with_password = (
        base_url.replace("http://", f"http://railstream:{PASSWORD}@") if url_password else base_url
    )
    doc = {
        "models": [
            {
                "type": "main",
                "engine": "openai",
                "model": "m",
                "parameters": {
                    "base_url": with_password,
                    "api_key": KEY,
                    "idle_timeout_s": 2,
                    "metadata": {"auth_token": KEY, "note": f"rotated to {KEY} on monday"},
                },
            }
        ],
        "rails": {"output": {"flows": ["log my config"], "streaming": {"enabled": True}}},
    }
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


def assert_hidden(text: str, where: str) -> None:
    assert KEY not in text, f"the API key shows in {where}: {text}"
    assert PASSWORD not in text, f"the URL's password shows in {where}: {text}"


async def test_no_repr_or_str_of_the_config_models_or_providers_shows_a_secret(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    config = keyed_config(server.base_url)
    seen: list[Any] = []

    def log_my_config(config: Any) -> bool:
        # What a careless action does: log and print the config it is handed.
        logging.getLogger("my.app").info("config: %s / %r", config, config)
        print(config, config.models[0], config.models[0].parameters)
        seen.append(config)
        return True

    rails = LLMRails(config)
    rails.register_action(log_my_config, "log_my_config")
    server.script(Script(tokens=["fine"]))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
        await rails.aclose()
    assert "".join(chunks) == "fine"
    assert seen, "the action never ran"
    # The key is in use, not dropped: the server got it.
    assert server.served[0].headers["authorization"] == f"Bearer {KEY}"
    model = config.models[0]
    provider = rails.provider("main")
    for where, text in [
        ("repr(config)", repr(config)),
        ("str(config)", str(config)),
        ("repr(model)", repr(model)),
        ("str(model)", str(model)),
        ("repr(parameters)", repr(model.parameters)),
        ("str(parameters)", str(model.parameters)),
        ("repr(provider)", repr(provider)),
        ("str(provider)", str(provider)),
        ("what the action printed", capsys.readouterr().out),
        ("the log", "\n".join(r.getMessage() for r in caplog.records)),
    ]:
        assert_hidden(text, where)
    assert "***" in repr(model.parameters)
    assert model.parameters["api_key"] == KEY  # still there to use


async def test_an_error_about_an_unreachable_provider_shows_no_password(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = keyed_config("http://127.0.0.1:1/v1", url_password=True)
    for text in (repr(config), str(config.models[0])):
        assert_hidden(text, "the config")
    rails = LLMRails(config)
    assert_hidden(repr(rails.provider("main")), "repr(provider)")
    rails.register_action(lambda: True, "log_my_config")
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
        await rails.aclose()
    assert json.loads(chunks[-1])["error"]["type"] == "generation_error"
    assert_hidden(chunks[-1], "the error chunk")
