"""Message content as a list of OpenAI content parts (what the openai SDK, LangChain and most
chat UIs send for models that take more than text): the rails read the text parts joined, the
model gets the parts as sent; a part the input rails cannot read is refused, never let through
unchecked. In the library, against the tests' OpenAI-compatible server, and through
``railstream server`` with the official openai client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import openai
import pytest
import trio

from railstream import InvalidRequestError, LLMRails, RailsConfig

from .helpers import HANG_GUARD_S
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess
from .test_openai_provider import config

PARTS = [{"type": "text", "text": "Say the code "}, {"type": "text", "text": "word"}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def with_input_rail(base_url: str) -> RailsConfig:
    plain = config(base_url)
    inputs = attrs.evolve(plain.rails.input, flows=("hear user",))
    return attrs.evolve(plain, rails=attrs.evolve(plain.rails, input=inputs))


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    fake.responder = lambda body: Script(tokens=["Fine", " then."])
    await nursery.start(fake.serve)
    return fake


async def test_the_rails_read_the_text_parts_joined_and_the_model_gets_the_parts(
    server: FakeOpenAI,
) -> None:
    heard: list[str] = []

    async def hear_user(user_message: str) -> bool:
        heard.append(user_message)
        return True

    rails = LLMRails(with_input_rail(server.base_url))
    rails.register_action(hear_user, "hear_user")
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=[{"role": "user", "content": PARTS}]) as stream:
            chunks = [c async for c in stream]
    await rails.aclose()
    assert "".join(chunks) == "Fine then."
    assert heard == ["Say the code word"]  # a text split over two parts is seen whole
    assert server.served[-1].body["messages"] == [{"role": "user", "content": PARTS}]


async def test_an_image_goes_to_the_model_where_no_input_rail_must_read_it(
    server: FakeOpenAI,
) -> None:
    rails = LLMRails(config(server.base_url))
    content = [*PARTS, IMAGE]
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(messages=[{"role": "user", "content": content}])
    await rails.aclose()
    assert result == {"role": "assistant", "content": "Fine then."}
    assert server.served[-1].body["messages"][-1]["content"] == content


async def test_an_image_the_input_rails_cannot_read_is_refused(server: FakeOpenAI) -> None:
    rails = LLMRails(with_input_rail(server.base_url))
    rails.register_action(lambda user_message: True, "hear_user")
    messages = [{"role": "user", "content": [*PARTS, IMAGE]}]
    with pytest.raises(InvalidRequestError) as refused:
        await rails.generate_async(messages=messages)
    await rails.aclose()
    assert str(refused.value) == (
        "messages[0].content: this config's input rails read text only and cannot check its "
        "image_url part(s); send text, or use a config without input rails"
    )
    assert server.served == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param([], "messages[0].content: the list of content parts is empty", id="empty"),
        pytest.param(
            ["hi"],
            "messages[0].content[0]: expected a content part, a dict with a type (text, "
            "image_url, ...), got 'hi'",
            id="bare-string",
        ),
        pytest.param(
            [{"type": "text", "text": 3}],
            "messages[0].content[0].text: expected a string",
            id="text-not-a-string",
        ),
        pytest.param(
            3,
            "messages[0].content: expected a string or a list of content parts, got int",
            id="number",
        ),
    ],
)
async def test_malformed_parts_are_refused_naming_the_part(content: Any, problem: str) -> None:
    rails = LLMRails(config("http://127.0.0.1:9/v1"))
    with pytest.raises(InvalidRequestError) as refused:
        await rails.generate_async(messages=[{"role": "user", "content": content}])
    await rails.aclose()
    assert str(refused.value) == problem


INPUT_RAILS_CONFIG = """
models:
  - {type: main, engine: scripted, parameters: {responses: ["Fine then."]}}
rails:
  input: {flows: [hear user]}
"""
ACTIONS = """
from railstream import action


@action()
def hear_user(user_message):
    return "forbidden" not in user_message
"""


@pytest.fixture(scope="module")
def parts_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("configs") / "guarded"
    folder.mkdir()
    (folder / "config.yml").write_text(INPUT_RAILS_CONFIG)
    (folder / "actions.py").write_text(ACTIONS)
    server = ServerProcess(folder.parent)
    yield server
    assert server.stop() == 0, server.log()


async def test_the_openai_client_sends_parts_through_the_server(parts_server: Any) -> None:
    def ask(content: Any) -> Any:
        client = openai.OpenAI(base_url=f"{parts_server.url}/v1", api_key="none")
        try:
            return client.chat.completions.create(
                model="guarded", messages=[{"role": "user", "content": content}]
            )
        finally:
            client.close()

    with trio.fail_after(HANG_GUARD_S):
        clean = await trio.to_thread.run_sync(ask, PARTS)
        assert clean.choices[0].message.content == "Fine then."
        # The rail reads "forbidden" across two parts and blocks.
        split = [{"type": "text", "text": "forbid"}, {"type": "text", "text": "den words"}]
        blocked = await trio.to_thread.run_sync(ask, split)
        assert blocked.choices[0].message.content == "I'm sorry, I can't respond to that."
        with pytest.raises(openai.BadRequestError) as refused:
            await trio.to_thread.run_sync(ask, [*PARTS, IMAGE])
    body = refused.value.body
    assert isinstance(body, dict)
    assert "cannot check its image_url part(s)" in json.dumps(body)
