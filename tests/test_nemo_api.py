"""NeMo Guardrails' Python API and server, call for call (issue 15): each row of NeMo's
behaviour, as NeMo's own streaming tests and its users call it."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from railstream import (
    GenerationResponse,
    InvalidRequestError,
    LLMRails,
    RailsConfig,
    StreamingHandler,
    StreamingNotSupportedError,
)
from railstream.facade._llmrails import BLOCKED_REPLY

from .helpers import HANG_GUARD_S, ROOT
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess

SCRIPTED = """
models:
  - type: main
    engine: scripted
    parameters: {responses: ["The answer is forty two."]}
rails:
  output:
    flows: [check no secrets]
    streaming: {enabled: true, chunk_size: 3, context_size: 1}
"""


def check_no_secrets(bot_message: str) -> bool:
    return "secret" not in bot_message


def scripted(yaml: str = SCRIPTED) -> LLMRails:
    rails = LLMRails(RailsConfig.from_content(yaml_content=yaml))
    rails.register_action(check_no_secrets, "check_no_secrets")
    return rails


async def words(*pieces: str) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


# stream_async(generator=gen) with no messages


async def test_stream_async_with_only_a_generator_streams_it_through_the_output_rails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = scripted()
    with trio.fail_after(HANG_GUARD_S):
        clean = [c async for c in rails.stream_async(generator=words("all ", "is ", "well"))]
        blocked = [
            c async for c in rails.stream_async(generator=words("the ", "secret ", "is ", "x"))
        ]
    assert "".join(clean) == "all is well"
    assert json.loads(blocked[-1])["error"]["param"] == "check no secrets"


def test_a_generator_without_messages_is_refused_when_input_rails_need_the_message() -> None:
    rails = scripted(SCRIPTED + "  input:\n    flows: [check no secrets]\n")
    with pytest.raises(InvalidRequestError, match="this config has input rails: pass messages="):
        rails.stream_async(generator=words("x"))


# StreamingNotSupportedError


def test_streaming_not_supported_is_a_value_error_as_in_nemo() -> None:
    rails = scripted(SCRIPTED.replace("enabled: true", "enabled: false"))
    with pytest.raises(
        ValueError, match=r"rails\.output\.streaming\.enabled is not true"
    ) as raised:
        rails.stream_async(messages=[{"role": "user", "content": "hi"}])
    assert isinstance(raised.value, StreamingNotSupportedError)


# generate(prompt=...)


def test_generate_with_a_prompt_returns_the_text_as_in_nemo() -> None:
    rails = scripted()
    assert rails.generate(prompt="question?") == "The answer is forty two."
    message = rails.generate(messages=[{"role": "user", "content": "question?"}])
    assert message == {"role": "assistant", "content": "The answer is forty two."}
    with_log = rails.generate(prompt="question?", options={"log": {"llm_calls": True}})
    assert isinstance(with_log, GenerationResponse)
    assert with_log.response == "The answer is forty two."


# the main call's prompt and completion in the log


async def test_the_main_calls_prompt_and_completion_are_in_the_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = scripted()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question?"},
    ]
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(messages=messages, options={"log": {"llm_calls": True}})
    assert isinstance(result, GenerationResponse)
    assert result.log is not None
    (call,) = result.log.llm_calls
    assert call.prompt == "System: Be brief.\n\nUser: question?"
    assert call.completion == "The answer is forty two."


async def test_a_cut_off_main_call_logs_what_it_said_so_far(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = scripted(SCRIPTED.replace('"The answer is forty two."', '"a secret for you, ok"'))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=[{"role": "user", "content": "q"}]) as stream:
            [c async for c in stream]
    main = stream.log.llm_calls[0]
    assert main.completion is not None
    assert "a secret" in main.completion


async def test_a_long_replys_completion_is_kept_to_the_logs_cap_whatever_its_length(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What the log keeps of the main call's reply is bounded (so is a stream's memory): the
    first characters, and a note of how many tokens there were."""
    from railstream.stages._usage import MAX_TEXT_CHARS

    reply = " ".join(f"w{i}" for i in range(20_000))
    rails = LLMRails(
        RailsConfig.from_content(
            yaml_content=f"models: [{{type: main, engine: scripted, parameters: {{responses: [{reply!r}]}}}}]"
        )
    )
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=[{"role": "user", "content": "q"}]) as stream:
            [c async for c in stream]
    completion = stream.log.llm_calls[0].completion
    assert completion is not None
    assert len(completion) <= MAX_TEXT_CHARS
    assert completion.startswith("w0 w1 w2 ")
    assert completion.endswith("... [the rest of its 20000 tokens not kept]")


# LLMRails(config, verbose=True)


def test_verbose_logs_each_llm_call_and_rail_run_to_stderr() -> None:
    """As NeMo's verbose: the calls and rail runs of each call, logged as it ends (in a
    process of its own: verbose sets up the engine logger, which is process state)."""
    program = (
        "from railstream import LLMRails, RailsConfig\n"
        f"rails = LLMRails(RailsConfig.from_content(yaml_content={SCRIPTED!r}), verbose=True)\n"
        "rails.register_action(lambda bot_message: 'forty' not in bot_message, 'check_no_secrets')\n"
        "rails.generate(prompt='q')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = result.stderr.splitlines()
    assert any(
        line.startswith("railstream.calls: LLM call general on scripted: completed in ")
        and line.endswith("1 prompt + 5 completion tokens")
        for line in lines
    ), lines
    assert any(
        line.startswith("railstream.calls: output rail 'check no secrets' on window 0: block in ")
        for line in lines
    ), lines
    assert result.stdout == ""


def test_without_verbose_nothing_is_printed() -> None:
    program = (
        "from railstream import LLMRails, RailsConfig\n"
        f"rails = LLMRails(RailsConfig.from_content(yaml_content={SCRIPTED!r}))\n"
        "rails.register_action(lambda bot_message: True, 'check_no_secrets')\n"
        "rails.generate(prompt='q')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert (result.stdout, result.stderr) == ("", "")


def test_verbose_leaves_an_applications_own_handler_alone(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("railstream")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    level = logger.level
    try:
        with caplog.at_level(logging.DEBUG, logger="railstream"):
            rails = LLMRails(RailsConfig.from_content(yaml_content=SCRIPTED), verbose=True)
            rails.register_action(check_no_secrets, "check_no_secrets")
            rails.generate(prompt="q")
        assert logger.handlers == [handler]
        assert any("LLM call general" in r.getMessage() for r in caplog.records)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# explain()


def test_explain_summarises_the_last_calls_llm_calls_as_nemo_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rails = scripted()
    assert rails.explain().llm_calls_summary() == "No LLM calls were made."
    rails.generate(prompt="question?")
    info = rails.explain()
    assert [c.task for c in info.llm_calls] == ["general"]
    info.print_llm_calls_summary()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Summary: 1 LLM call(s) took ")
    assert out[0].endswith(" seconds and used 6 tokens.")
    assert out[2].startswith("1. Task `general` took ")
    assert out[2].endswith(" seconds and used 6 tokens.")


# StreamingHandler


def handler(**kwargs: Any) -> StreamingHandler:
    with pytest.warns(DeprecationWarning, match="StreamingHandler is deprecated"):
        return StreamingHandler(**kwargs)


async def test_push_chunk_refuses_what_is_not_text() -> None:
    with pytest.raises(TypeError, match=r"push_chunk takes a str \(or None for the end\), got int"):
        await handler().push_chunk(123)  # type: ignore[arg-type]


async def consume(h: StreamingHandler, *chunks: str | None) -> list[Any]:
    got: list[Any] = []

    async def read() -> None:
        got.extend([c async for c in h])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for chunk in chunks:
            await h.push_chunk(chunk)
    return got


async def test_set_pattern_removes_a_prefix_and_a_suffix_split_across_chunks() -> None:
    h = handler()
    h.set_pattern(prefix='  "', suffix='"')
    got = await consume(h, " ", ' "Hel', "lo", ' there"', None)
    assert "".join(got) == "Hello there"
    assert h.completion == "Hello there"
    missing = handler()
    missing.set_pattern(prefix="<<", suffix=">>")
    assert "".join(await consume(missing, "<", "x>", ">", None)) == "<x"  # only the suffix there


async def test_wait_returns_the_completion_and_a_piped_handler_gets_every_chunk() -> None:
    first, second = handler(), handler()
    first.set_pipe_to(second)
    got: list[str] = []

    async def read() -> None:
        got.extend([c async for c in second])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for chunk in ("a", "b", None):
            await first.push_chunk(chunk)
        assert await first.wait() == "ab"
    assert got == ["a", "b"]
    assert await second.wait() == "ab"


async def test_generation_metadata_and_print(capsys: pytest.CaptureFixture[str]) -> None:
    h = handler(enable_print=True, include_generation_metadata=True)
    got = await consume(h, "x", "y", None)
    assert got == [{"text": "x", "generation_info": {}}, {"text": "y", "generation_info": {}}]
    assert capsys.readouterr().out == "xy"


def test_nemos_dialog_only_handler_features_are_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match=r"enable_buffer=True\) serves NeMo's dialog generation"):
        handler(enable_buffer=True)
    h = handler()
    with pytest.raises(AttributeError, match=r"StreamingHandler\.stop \(NeMo's stop tokens"):
        h.stop = ["\n"]


async def test_generate_async_with_a_handler_flushes_what_the_suffix_held_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A suffix that never comes: the text held back in case it would is handed on at the
    end; one that comes is removed."""
    for suffix, expected in (("?!", "The answer is forty two."), (" two.", "The answer is forty")):
        h = handler()
        h.set_pattern(suffix=suffix)
        got: list[str] = []

        async def read(h: StreamingHandler = h, got: list[str] = got) -> None:
            got.extend([c async for c in h])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await scripted().generate_async(prompt="q", streaming_handler=h)
        assert "".join(got) == expected


async def test_generate_async_returns_only_once_the_handlers_consumer_has_had_every_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A consumer slower than the reply (1 s per chunk): generate_async returns after it has
    taken the last chunk and the end, so an application that stops when generate_async
    returns (asyncio.run's main) loses nothing; a handler nobody reads does not wait."""
    h = handler()
    got: list[str] = []

    async def read() -> None:
        async for chunk in h:
            await trio.sleep(1)
            got.append(chunk)

    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            result = await scripted().generate_async(prompt="q", streaming_handler=h)
            assert "".join(got) == result, "generate_async returned with chunks unread"
        unread = handler()
        assert await scripted().generate_async(prompt="q", streaming_handler=unread) == result


# llm=<a LangChain chat model>


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOpenAI:
    server = FakeOpenAI()
    await nursery.start(server.serve)
    return server


async def test_a_langchain_chat_model_as_llm_streams_through_the_rails_from_trio(
    fake: FakeOpenAI,
) -> None:
    """ChatOpenAI against the local server: its tokens through the output rails, its usage
    in the log, and a block closes its HTTP stream long before the reply's end. (Real time:
    the model's sync stream runs in worker threads, which a virtual clock would outrun.)"""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=fake.base_url, api_key="sk-test", model="m", stream_usage=True)
    rails = LLMRails(RailsConfig.from_content(yaml_content=SCRIPTED), llm=llm)
    rails.register_action(check_no_secrets, "check_no_secrets")
    fake.script(Script(tokens=["All", " is", " well", " here."]))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=[{"role": "user", "content": "hi"}]) as stream:
            clean = [c async for c in stream]
    assert "".join(clean) == "All is well here."
    main = stream.log.llm_calls[0]
    assert (main.llm_provider_name, main.llm_model_name) == ("langchain:ChatOpenAI", "m")
    assert main.completion_tokens == 4
    fake.script(Script(tokens=["a secret "] + ["more "] * 500, delay=0.01))
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=[{"role": "user", "content": "hi"}]) as stream:
            blocked = [c async for c in stream]
        await fake.wait_all_closed()
    assert json.loads(blocked[-1])["error"]["param"] == "check no secrets"
    assert fake.served[-1].disconnected_at is not None
    assert fake.served[-1].tokens_written < 100


def test_a_langchain_chat_model_streams_on_the_applications_asyncio_loop(
    upstream: str,
) -> None:
    from langchain_openai import ChatOpenAI

    async def main() -> list[str]:
        llm = ChatOpenAI(base_url=f"{upstream}/v1", api_key="sk-test", model="m")
        rails = LLMRails(RailsConfig.from_content(yaml_content=SCRIPTED), llm=llm)
        rails.register_action(check_no_secrets, "check_no_secrets")
        loop = asyncio.get_running_loop()
        chunks = []
        async for chunk in rails.stream_async(messages=[{"role": "user", "content": "hi"}]):
            chunks.append(chunk)
            assert asyncio.get_running_loop() is loop
        await llm.root_async_client.close()  # the application's client: its pool is its own
        return chunks

    chunks = asyncio.run(main())
    assert "".join(chunks) == "tok0 tok1 tok2 "


@pytest.fixture
def upstream() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", "--tokens", "3"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    yield f"http://127.0.0.1:{port}"
    process.kill()
    process.wait()
    process.stdout.close()


def test_an_llm_that_is_no_model_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match=r"llm: expected a LangChain chat model .* got object"):
        LLMRails(RailsConfig.from_content(yaml_content=SCRIPTED), llm=object())  # type: ignore[arg-type]


# options: output_vars, the log's shapes


async def test_output_vars_and_activated_rails_have_nemos_shapes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rails = scripted(SCRIPTED.replace("forty two", "a secret"))
    messages = [
        {"role": "context", "content": {"tier": "gold"}},
        {"role": "user", "content": "q"},
    ]
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(
            messages=messages,
            options={"output_vars": True, "log": {"activated_rails": True}},
        )
        named = await rails.generate_async(
            messages=messages, options={"output_vars": ["tier", "triggered_output_rail", "x"]}
        )
    assert isinstance(result, GenerationResponse)
    assert result.output_data == {
        "tier": "gold",
        "user_message": "q",
        "bot_message": BLOCKED_REPLY,
        "triggered_input_rail": None,
        "triggered_output_rail": "check no secrets",
    }
    assert isinstance(named, GenerationResponse)
    assert named.output_data == {
        "tier": "gold",
        "triggered_output_rail": "check no secrets",
        "x": None,
    }
    assert result.log is not None
    (rail,) = result.log.activated_rails
    assert rail.decisions == ["execute check_no_secrets", "refuse to respond", "stop"]
    assert result.log.stats is not None
    assert result.log.stats.input_rails_duration == 0


def test_options_that_would_turn_rails_off_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"options\.rails: railstream applies every rail"):
        scripted().generate(prompt="q", options={"rails": {"output": False}})


async def test_a_context_message_reaches_the_actions_and_never_the_model(
    autojump_clock: trio.testing.MockClock, fake: FakeOpenAI
) -> None:
    seen = []

    def check(bot_message: str, context: dict[str, Any]) -> bool:
        seen.append(context.get("tier"))
        return True

    yaml = SCRIPTED.replace("engine: scripted", "engine: openai\n    model: m").replace(
        'parameters: {responses: ["The answer is forty two."]}',
        f"parameters: {{base_url: {fake.base_url}, api_key: k}}",
    )
    rails = LLMRails(RailsConfig.from_content(yaml_content=yaml))
    rails.register_action(check, "check_no_secrets")
    messages = [{"role": "context", "content": {"tier": "gold"}}, {"role": "user", "content": "q"}]
    with trio.fail_after(HANG_GUARD_S):
        await rails.generate_async(messages=messages)
    assert seen
    assert set(seen) == {"gold"}
    assert fake.served[0].body["messages"] == [{"role": "user", "content": "q"}]
    await rails.aclose()


# the server


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[ServerProcess]:
    folder = tmp_path / "guarded"
    folder.mkdir()
    (folder / "config.yml").write_text(SCRIPTED)
    (folder / "actions.py").write_text(
        "from nemoguardrails.actions import action\n\n\n"
        "@action()\n"
        "def check_no_secrets(bot_message: str, context: dict) -> bool:\n"
        "    return 'secret' not in bot_message and context.get('tier') != 'blocked'\n"
    )
    server = ServerProcess(tmp_path)
    yield server
    assert server.stop() == 0, server.log()


def post(server: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


USER = [{"role": "user", "content": "q"}]


def test_the_server_takes_nemos_guardrails_object(guarded_server: ServerProcess) -> None:
    """config_ids (one), context (the actions' variables) and options (log, output_vars),
    and a non-streamed reply's guardrails object: config_id, and what was asked."""
    reply = post(
        guarded_server,
        {
            "messages": USER,
            "guardrails": {
                "config_ids": ["guarded"],
                "context": {"tier": "gold"},
                "options": {"log": {"activated_rails": True}, "output_vars": ["tier"]},
            },
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"] == "The answer is forty two."
    guardrails = body["guardrails"]
    assert guardrails["config_id"] == "guarded"
    assert guardrails["output_data"] == {"tier": "gold"}
    assert [r["name"] for r in guardrails["log"]["activated_rails"]] == ["check no secrets"]
    assert guardrails["log"]["llm_calls"] == []  # not asked
    blocked = post(
        guarded_server,
        {"messages": USER, "guardrails": {"config_id": "guarded", "context": {"tier": "blocked"}}},
    ).json()
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    assert blocked["guardrails"]["error"]["param"] == "check no secrets"
    plain = post(guarded_server, {"messages": USER}).json()
    assert plain["guardrails"] == {"config_id": "guarded"}


@pytest.mark.parametrize(
    ("guardrails", "problem"),
    [
        ({"config_ids": ["guarded", "other"]}, "railstream serves one config per request"),
        ({"config_id": "guarded", "config_ids": ["guarded"]}, "give config_id or config_ids"),
        ({"thread_id": "t" * 16}, "railstream keeps no conversation between requests"),
        ({"options": {"rails": {"input": False}}}, "options.rails: railstream applies every rail"),
        ({"options": {"bogus": 1}}, "guardrails.options.bogus: unknown key"),
    ],
    ids=["two-configs", "both", "thread", "rails-off", "unknown-option"],
)
def test_the_server_refuses_what_it_does_not_do_with_a_400_saying_why(
    guarded_server: ServerProcess, guardrails: dict[str, Any], problem: str
) -> None:
    reply = post(guarded_server, {"messages": USER, "guardrails": guardrails})
    assert reply.status_code == 400, reply.text
    assert problem in reply.json()["error"]["message"]


def test_a_streamed_request_takes_llm_params_but_refuses_a_log_it_would_not_send(
    guarded_server: ServerProcess,
) -> None:
    reply = post(
        guarded_server,
        {"messages": USER, "stream": True, "guardrails": {"options": {"log": {"llm_calls": True}}}},
    )
    assert reply.status_code == 400
    assert "log and output_vars come with a whole reply" in reply.json()["error"]["message"]
