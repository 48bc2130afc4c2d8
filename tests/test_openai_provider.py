"""engine: openai against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py)."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
import trio
import trio.testing

from railstream import ConfigError, LLMRails, RailsConfig
from railstream.config_schema import ModelConfig, OpenAISettings
from railstream.stages._errors import DownstreamError, ProviderTimeoutError
from railstream.stages._messages import Usage
from railstream.stages.generation import ChatRequest, CollectTokens, HttpClients, OpenAIProvider
from railstream.stages.generation._http_client import POOL_SIZE
from railstream.stages.generation._openai import _usage

from .helpers import HANG_GUARD_S, USER, collect
from .openai_server import FakeOpenAI, Script


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def config(
    base_url: str,
    *,
    flows: list[str] | None = None,
    chunk_size: int = 4,
    context_size: int = 1,
    params: dict[str, Any] | None = None,
    judge: bool = False,
) -> RailsConfig:
    parameters = {
        "base_url": base_url,
        "api_key": "sk-test-secret-key",
        "temperature": 0.2,
        "connect_timeout_s": 5,
        "first_token_timeout_s": 10,
        "idle_timeout_s": 2,
        "retry_backoff_s": 0.1,
        **(params or {}),
    }
    models = [{"type": "main", "engine": "openai", "model": "test-model", "parameters": parameters}]
    if judge:
        models.append(
            {
                "type": "self_check_output",
                "engine": "openai",
                "model": "judge-model",
                "parameters": parameters,
            }
        )
    doc: dict[str, Any] = {
        "models": models,
        "rails": {
            "output": {
                "flows": flows or [],
                "streaming": {
                    "enabled": True,
                    "chunk_size": chunk_size,
                    "context_size": context_size,
                    "stream_first": False,
                },
            }
        },
    }
    if judge:
        doc["prompts"] = [
            {"task": "self_check_output", "content": "Block this? {{ bot_response }}"}
        ]
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


@pytest.fixture
async def rails_for(server: FakeOpenAI) -> AsyncIterator[Any]:
    made: list[LLMRails] = []

    def make(**kwargs: Any) -> LLMRails:
        rails = LLMRails(config(server.base_url, **kwargs))
        made.append(rails)
        return rails

    yield make
    for rails in made:
        await rails.aclose()


def no_secret(bot_message: str) -> bool:
    return "SECRET" not in bot_message


def error_of(chunk: str) -> dict[str, Any]:
    return json.loads(chunk)["error"]  # type: ignore[no-any-return]


async def test_streams_the_exact_text_and_records_usage(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    rails = rails_for()
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert "".join(chunks) == "Hello from the server."
    call = stream.log.llm_calls[0]
    assert (call.llm_provider_name, call.llm_model_name, call.status) == (
        "openai",
        "test-model",
        "completed",
    )
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (7, 4, 11)
    assert call.time_to_first_token is not None
    (served,) = server.served
    assert served.body == {
        "temperature": 0.2,
        "model": "test-model",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert served.headers["authorization"] == "Bearer sk-test-secret-key"


async def test_usage_absent_is_none_and_stream_usage_false_asks_for_none(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(usage=False))
    rails = rails_for(params={"stream_usage": False})
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            assert "".join([c async for c in stream]) == "Hello from the server."
    call = stream.log.llm_calls[0]
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (None, None, None)
    assert call.streamed_tokens == 4
    assert "stream_options" not in server.served[0].body


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_usage_counts_the_server_leaves_out_stay_none(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any, stream: bool
) -> None:
    """A usage object with some counts missing (or not numbers): those are None, never 0."""
    server.script(Script(usage_fields={"completion_tokens": 4, "total_tokens": "11"}))
    rails = rails_for()
    options = {"log": {"llm_calls": True}}
    with trio.fail_after(HANG_GUARD_S):
        if stream:
            async with rails.stream_async(messages=USER) as streamed:
                assert "".join([c async for c in streamed]) == "Hello from the server."
            call = streamed.log.llm_calls[0]
        else:
            result = await rails.generate_async(messages=USER, options=options)
            call = result.log.llm_calls[0]
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (None, 4, None)


def test_usage_keeps_only_whole_numbers() -> None:
    assert _usage({"prompt_tokens": 0, "completion_tokens": True, "x": 1}) == Usage(
        prompt_tokens=0, completion_tokens=None, total_tokens=None
    )
    assert _usage(None) == Usage(prompt_tokens=None, completion_tokens=None, total_tokens=None)


async def test_per_call_llm_params_override_the_config(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    rails = rails_for(params={"max_tokens": 50})
    with trio.fail_after(HANG_GUARD_S):
        await collect(rails, options={"llm_params": {"temperature": 0.9}})
    assert (server.served[0].body["temperature"], server.served[0].body["max_tokens"]) == (0.9, 50)


async def test_many_deltas_in_one_read_arrive_whole(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(tokens=[f"t{i} " for i in range(50)], one_write=True))
    rails = rails_for()
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert "".join(chunks) == "".join(f"t{i} " for i in range(50))


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        pytest.param(["Smile ", "\ud83d", "\ude00", " done"], "Smile \U0001f600 done", id="alone"),
        pytest.param(["Smile \ud83d", "\ude00 done"], "Smile \U0001f600 done", id="in-text"),
        pytest.param(["cut \ud83d"], "cut \ufffd", id="half-at-the-end"),
        pytest.param(["cut \ud83d", " on"], "cut \ufffd on", id="half-then-text"),
    ],
)
async def test_a_character_split_into_surrogates_over_two_deltas_arrives_whole(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    rails_for: Any,
    tokens: list[str],
    text: str,
) -> None:
    """An upstream that splits an emoji's UTF-16 surrogates over two deltas: the consumer
    gets one character (a lone half is U+FFFD), and every chunk can be written as UTF-8."""
    server.script(Script(tokens=tokens))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for())
    assert "".join(chunks) == text
    for chunk in chunks:
        chunk.encode("utf-8")  # a lone surrogate would raise here


async def test_a_server_that_ends_without_done_ends_the_reply(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(done=False))
    with trio.fail_after(HANG_GUARD_S):
        assert "".join(await collect(rails_for())) == "Hello from the server."


# faults


async def test_401_is_a_downstream_error_with_the_providers_message_and_no_retry(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(status=401))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for())
    assert chunks == [
        json.dumps(
            {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "downstream_error",
                    "param": None,
                    "code": 401,
                }
            }
        )
    ]
    assert len(server.served) == 1


async def test_429_is_retried_after_retry_after(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(
        Script(
            status=429, retry_after="3", error_body='{"error": {"message": "Rate limit reached"}}'
        )
    )
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        chunks = await collect(rails_for())
    assert "".join(chunks) == "Hello from the server."
    assert len(server.served) == 2
    assert trio.current_time() - start >= 3


async def test_persistent_5xx_is_retried_then_reported(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(*[Script(status=503, error_body="upstream overloaded")] * 3)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for())
    assert error_of(chunks[-1]) == {
        "message": "upstream overloaded",
        "type": "downstream_error",
        "param": None,
        "code": 503,
    }
    assert len(server.served) == 3  # the first try and max_retries (2) more


async def test_retries_stop_at_the_first_token_deadline(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(status=429, retry_after="60"))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for())
    assert error_of(chunks[-1])["code"] == 429
    assert len(server.served) == 1  # a 60 s wait cannot fit in the 10 s first-token deadline


async def test_malformed_sse_is_a_generation_error_after_the_good_tokens(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(malformed_after=2))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for(chunk_size=1, context_size=0))
    assert "".join(chunks[:-1]) == "Hello from"
    error = error_of(chunks[-1])
    assert (error["type"], error["code"]) == ("generation_error", "generation_failed")
    assert error["message"] == "malformed chunk from the provider (not JSON): '{not json'"


async def test_a_connection_dropped_mid_stream_is_a_generation_error(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(drop_after=3))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for(chunk_size=1, context_size=0))
    assert "".join(chunks[:-1]) == "Hello from the"
    error = error_of(chunks[-1])
    assert error["type"] == "generation_error"
    assert error["message"].startswith(
        f"the provider broke the HTTP protocol (connection dropped mid-reply?) (POST {server.base_url}/chat/completions)"
    )


async def test_a_stall_mid_stream_times_out_and_hangs_up(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(stall_after=2))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for(chunk_size=1, context_size=0))
        await trio.testing.wait_all_tasks_blocked()
    assert "".join(chunks[:-1]) == "Hello from"
    assert error_of(chunks[-1])["message"] == (
        f"the provider stalled: nothing for 2s mid-reply (POST {server.base_url}/chat/completions)"
    )
    assert server.served[0].disconnected_at is not None


async def test_a_stall_is_reported_after_the_idle_timeout_and_before_its_slack_ends(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    """The stall timer is re-armed lazily; it must never fire early, nor much late."""
    server.script(Script(tokens=["a ", "b ", "c ", "d "], delay=0.5, stall_after=3))
    seen: list[tuple[float, str]] = []
    with trio.fail_after(HANG_GUARD_S):
        async with rails_for(chunk_size=1, context_size=0).stream_async(messages=USER) as stream:
            async for chunk in stream:
                seen.append((trio.current_time(), chunk))
    *tokens, (failed_at, last) = seen
    assert "".join(text for _, text in tokens) == "a b c "
    assert error_of(last)["message"].startswith("the provider stalled: nothing for 2s")
    silence = failed_at - tokens[-1][0]
    assert 2 <= silence <= 2 * (1 + 1 / 8) + 0.01


async def test_a_server_that_pauses_just_under_the_idle_timeout_never_stalls(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    """Each piece pushes the stall deadline on, however rarely it is re-armed."""
    words = [f"w{i} " for i in range(12)]
    server.script(Script(tokens=words, delay=1.95))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for(chunk_size=1, context_size=0))
    assert "".join(chunks) == "".join(words)


async def test_a_consumer_slower_than_the_idle_timeout_is_backpressure_not_a_stall(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    """While the pipeline is full the provider waits on it; that wait is not the model's
    silence, so however long the consumer dawdles the reply arrives whole."""
    words = [f"w{i} " for i in range(40)]
    server.script(Script(tokens=words))
    received: list[str] = []
    with trio.fail_after(HANG_GUARD_S):
        async with rails_for(chunk_size=1, context_size=0).stream_async(messages=USER) as stream:
            async for chunk in stream:
                received.append(chunk)
                await trio.sleep(5)  # longer than idle_timeout_s (2 s), after every chunk
    assert "".join(received) == "".join(words)
    assert server.served[0].finished


async def test_no_headers_within_the_first_token_deadline_times_out(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(stall_before_headers=True))
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        chunks = await collect(rails_for())
    assert (
        error_of(chunks[-1])["message"]
        == f"no reply from the provider within 10s (POST {server.base_url}/chat/completions)"
    )
    assert 10 <= trio.current_time() - start < 11


async def test_an_unreachable_server_is_retried_then_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    async with LLMRails(config(f"http://127.0.0.1:{port}/v1")) as rails:
        with trio.fail_after(HANG_GUARD_S):
            chunks = await collect(rails)
    error = error_of(chunks[-1])
    assert error["type"] == "generation_error"
    assert error["message"].startswith(
        f"cannot connect to the provider (POST http://127.0.0.1:{port}/v1/chat/completions)"
    )
    assert "sk-test-secret-key" not in error["message"]


@pytest.mark.parametrize("after_done", ["hold", "drop"])
async def test_a_body_that_does_not_end_after_done_still_ends_the_reply_whole(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    rails_for: Any,
    after_done: Literal["hold", "drop"],
) -> None:
    """[DONE] ends the reply: a server that then keeps the body open past the idle timeout,
    or drops it mid-chunk, costs its connection (closed, not pooled), not the reply or its
    usage."""
    server.script(Script(after_done=after_done))
    rails = rails_for()
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
        ended = trio.current_time() - start
        await trio.testing.wait_all_tasks_blocked()
        if after_done == "hold":
            assert server.served[0].disconnected_at is not None  # railstream closed it
        assert "".join(await collect(rails)) == "Hello from the server."  # on a new connection
    assert "".join(chunks) == "Hello from the server."  # no error chunk after it
    call = stream.log.llm_calls[0]
    assert (call.status, call.prompt_tokens, call.completion_tokens, call.total_tokens) == (
        "completed",
        7,
        4,
        11,
    )
    assert ended < 2  # within the drain's limit, not the idle timeout's (2 s)
    assert server.connections == 2


async def test_an_endless_sse_line_ends_the_reply_promptly_in_bounded_memory(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    """A server sending one line that never ends (16 MiB, then silence) is stopped at the
    default 1 MiB limit: a clear error, the connection closed, memory never near 16 MiB."""
    server.script(Script(endless_line=16 << 20))
    rails = rails_for()
    tracemalloc.start()
    try:
        with trio.fail_after(HANG_GUARD_S):
            start = trio.current_time()
            chunks = await collect(rails)
            failed_after = trio.current_time() - start
            await trio.testing.wait_all_tasks_blocked()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunks == [chunks[-1]]
    error = error_of(chunks[-1])
    assert (error["type"], error["message"]) == (
        "generation_error",
        "the provider sent an SSE line longer than 1048576 bytes (max_event_bytes)"
        f" (POST {server.base_url}/chat/completions)",
    )
    assert failed_after < 2  # by the limit, not by the stall timer (idle_timeout_s 2)
    assert server.served[0].disconnected_at is not None
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


# whole (non-streamed) replies: request_timeout_s


def direct_provider(
    base_url: str, clients: HttpClients, seed: int, **params: float
) -> OpenAIProvider:
    """The provider alone, its retry jitter drawn from ``random.Random(seed)``."""
    parameters = {
        "base_url": base_url,
        "retry_backoff_s": 0.1,
        "first_token_timeout_s": 10,
        "idle_timeout_s": 2,
        **params,
    }
    model = ModelConfig(type="main", engine="openai", model="m", parameters=parameters)
    return OpenAIProvider(model=model, clients=clients, environ={}, rng=random.Random(seed))


async def test_a_slow_but_healthy_whole_reply_is_not_cut_by_the_first_token_deadline(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    """1,000 tokens at 15 tokens/s: 67 s to the headers, far past first_token_timeout_s
    (10 s) and idle_timeout_s (2 s), well within request_timeout_s (default 600 s)."""
    server.script(Script(tokens=["w "] * 1000, delay=1 / 15))
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        result = await rails_for().generate_async(messages=USER)
    assert result == {"role": "assistant", "content": "w " * 1000}
    assert trio.current_time() - start >= 66


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(Script(stall_before_headers=True), id="no-headers"),
        pytest.param(Script(stall_after=0), id="half-a-body"),
    ],
)
async def test_a_stalled_whole_reply_times_out_at_request_timeout(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any, script: Script
) -> None:
    """The provider itself, for the error's class (the facade re-raises a GenerationError)."""
    server.script(script)
    clients = HttpClients()
    provider = direct_provider(server.base_url, clients, 0, request_timeout_s=120)
    with trio.fail_after(HANG_GUARD_S):
        start = trio.current_time()
        with pytest.raises(
            ProviderTimeoutError,
            match=r"^no whole reply from the provider within 120s \(request_timeout_s\)"
            rf" \(POST {server.base_url}/chat/completions\)$",
        ):
            await provider.complete(ChatRequest(messages=tuple(USER)))
        failed_after = trio.current_time() - start
        await trio.testing.wait_all_tasks_blocked()
        await clients.aclose()
    assert 120 <= failed_after < 121
    assert server.served[0].disconnected_at is not None


# retries: jittered


@pytest.mark.parametrize("seed", [1, 2])
async def test_backoff_is_full_jitter_on_the_exponential_step(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, seed: int
) -> None:
    """Each wait is drawn from [0, 0.1 * 2**attempt): seeded, so the draws are known; two
    seeds, so two streams refused together come back apart."""
    server.script(Script(status=503), Script(status=503))
    clients = HttpClients()
    emit = CollectTokens()
    with trio.fail_after(HANG_GUARD_S):
        await direct_provider(server.base_url, clients, seed).stream(
            ChatRequest(messages=tuple(USER)), emit
        )
        await clients.aclose()
    assert "".join(emit.tokens) == "Hello from the server."
    draws = random.Random(seed)
    expected = [draws.uniform(0, 0.1), draws.uniform(0, 0.2)]
    at = [s.received_at for s in server.served]
    assert [at[1] - at[0], at[2] - at[1]] == pytest.approx(expected, abs=1e-6)


async def test_retry_after_is_waited_at_least_then_spread(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    server.script(Script(status=429, retry_after="3"))
    clients = HttpClients()
    emit = CollectTokens()
    with trio.fail_after(HANG_GUARD_S):
        await direct_provider(server.base_url, clients, 7).stream(
            ChatRequest(messages=tuple(USER)), emit
        )
        await clients.aclose()
    assert "".join(emit.tokens) == "Hello from the server."
    waited = server.served[1].received_at - server.served[0].received_at
    assert waited == pytest.approx(3 + random.Random(7).uniform(0, 0.1), abs=1e-6)


# cancellation reaches the wire


async def test_a_block_closes_the_http_stream_and_the_server_stops_writing(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    tokens = [f"w{i} " for i in range(100)]
    tokens[10] = "SECRET "
    server.script(Script(tokens=tokens, delay=0.01))
    rails = rails_for(flows=["no secret"])
    rails.register_action(no_secret)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
        blocked_at = trio.current_time()
        await trio.sleep(1)  # the server would go on writing, if it could
    assert error_of(chunks[-1])["code"] == "content_blocked"
    served = server.served[0]
    assert served.disconnected_at is not None
    assert served.disconnected_at - blocked_at < 0.01  # seen within a token's time
    # Windows of 4 with context 1: token 10 is checked in the window ending at token 13.
    assert served.tokens_at_disconnect is not None
    assert served.tokens_at_disconnect <= 16
    assert served.tokens_written == served.tokens_at_disconnect
    assert not served.finished


async def test_aclose_closes_the_http_stream(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(tokens=[f"w{i} " for i in range(100)], delay=0.01))
    rails = rails_for(chunk_size=1, context_size=0)
    with trio.fail_after(HANG_GUARD_S):
        stream = rails.stream_async(messages=USER)
        assert await stream.__anext__() == "w0 "
        closed_at = trio.current_time()
        await stream.aclose()
        await trio.sleep(1)
    served = server.served[0]
    assert served.disconnected_at is not None
    assert served.disconnected_at - closed_at < 0.01
    assert served.tokens_written <= 5
    assert stream.log.llm_calls[0].status == "cancelled"


async def test_connections_are_pooled_and_closed_with_the_facade(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    rails = LLMRails(config(server.base_url))
    with trio.fail_after(HANG_GUARD_S):
        for _ in range(3):
            assert "".join(await collect(rails)) == "Hello from the server."
        await trio.testing.wait_all_tasks_blocked()
        assert (server.connections, server.open_connections) == (1, 1)  # one kept-alive connection
        await rails.aclose()
        await trio.testing.wait_all_tasks_blocked()
    assert server.open_connections == 0
    assert len(server.served) == 3


async def test_a_client_is_closed_when_its_trio_run_ends(server: FakeOpenAI) -> None:
    """Each sync generate() is its own trio.run, with its own client: when a run ends its
    client must close its pooled connection, with no aclose() from anyone.

    Real time, not the autojump clock: the client's runs are in a worker thread."""
    clients = HttpClients()
    provider = direct_provider(server.base_url, clients, 0)

    async def one_reply() -> str:
        emit = CollectTokens()
        await provider.stream(ChatRequest(messages=tuple(USER)), emit)
        return "".join(emit.tokens)

    with trio.fail_after(HANG_GUARD_S):
        for run in (1, 2):
            assert await trio.to_thread.run_sync(trio.run, one_reply) == "Hello from the server."
            # The run has ended; the server sees the close as soon as the kernel hands it the
            # FIN. Waited for a while, not forever, so that a connection left open fails the
            # assertion below instead of hanging.
            with trio.move_on_after(5):
                await server.wait_all_closed()
            assert (server.connections, server.open_connections) == (run, 0)


# non-streaming calls and the judge


async def test_generate_async_makes_a_plain_request(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    rails = rails_for(flows=["no secret"])
    rails.register_action(no_secret)
    with trio.fail_after(HANG_GUARD_S):
        result = await rails.generate_async(messages=USER, options={"log": {"llm_calls": True}})
    assert result.response == [{"role": "assistant", "content": "Hello from the server."}]
    assert server.served[0].body["stream"] is False
    assert "stream_options" not in server.served[0].body
    assert result.log.llm_calls[0].total_tokens == 11


async def test_generate_async_raises_the_providers_error(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(status=401))
    with (
        trio.fail_after(HANG_GUARD_S),
        pytest.raises(DownstreamError, match=r"^Incorrect API key provided$"),
    ):
        await rails_for().generate_async(messages=USER)


async def test_self_check_output_asks_the_judge_model_over_http(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.default = Script(tokens=["one ", "two ", "three"])
    server.script(Script(tokens=["one ", "two ", "three"]), Script(tokens=["No"]))
    rails = rails_for(flows=["self check output"], judge=True, chunk_size=10, context_size=0)
    with trio.fail_after(HANG_GUARD_S):
        async with rails.stream_async(messages=USER) as stream:
            chunks = [c async for c in stream]
    assert "".join(chunks) == "one two three"
    judge = server.served[1]
    assert judge.body["model"] == "judge-model"
    assert judge.body["stream"] is False
    assert judge.body["messages"] == [{"role": "user", "content": "Block this? one two three"}]
    tasks = [(c.task, c.llm_model_name) for c in stream.log.llm_calls]
    assert ("self_check_output", "judge-model") in tasks


async def test_self_check_output_blocks_when_the_judge_says_yes(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(tokens=["one ", "two ", "three"]), Script(tokens=["Yes"]))
    rails = rails_for(flows=["self check output"], judge=True, chunk_size=10, context_size=0)
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails)
    assert error_of(chunks[-1])["message"] == "Blocked by self check output rails."


# keys


def test_api_key_comes_from_the_named_env_var_or_openai_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from railstream.stages.generation._openai import resolve_api_key

    base = config("http://127.0.0.1:1/v1").models[0]
    no_key = type(base)(
        type="main", engine="openai", model="m", parameters={"base_url": "http://x/v1"}
    )
    named = type(base)(
        type="main", engine="openai", model="m", api_key_env_var="MY_KEY", parameters={}
    )
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert resolve_api_key(base) == "sk-test-secret-key"
    assert resolve_api_key(no_key) is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert resolve_api_key(no_key) == "sk-env"
    monkeypatch.setenv("MY_KEY", "sk-named")
    assert resolve_api_key(named) == "sk-named"
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(
        ValueError,
        match=r"^model 'main': api_key_env_var: environment variable MY_KEY is not set$",
    ):
        resolve_api_key(named)


async def test_the_openai_example_runs_against_an_endpoint_from_the_environment(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .helpers import ROOT

    monkeypatch.setenv("RAILSTREAM_BASE_URL", server.base_url)
    monkeypatch.setenv("RAILSTREAM_MODEL", "my-vllm-model")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.script(Script(tokens=["All ", "good ", "here."]), Script(tokens=["No"]))
    async with LLMRails(RailsConfig.from_path(ROOT / "examples" / "openai")) as rails:
        with trio.fail_after(HANG_GUARD_S):
            assert "".join(await collect(rails)) == "All good here."
    main, judge = server.served
    assert (main.body["model"], main.body["stream"], main.body["max_tokens"]) == (
        "my-vllm-model",
        True,
        512,
    )
    assert "authorization" not in main.headers
    assert judge.body["stream"] is False
    assert 'Bot message: "All good here."' in judge.body["messages"][0]["content"]


async def test_an_error_object_mid_stream_becomes_its_payload(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(error_after=2))
    with trio.fail_after(HANG_GUARD_S):
        chunks = await collect(rails_for(chunk_size=1, context_size=0))
    assert "".join(chunks[:-1]) == "Hello from"
    assert error_of(chunks[-1]) == {
        "message": "model overloaded",
        "type": "downstream_error",
        "param": None,
        "code": 503,
    }


async def test_a_cancelled_caller_closes_the_http_stream(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI, rails_for: Any
) -> None:
    server.script(Script(tokens=[f"w{i} " for i in range(100)], delay=0.01))
    rails = rails_for(chunk_size=1, context_size=0)
    received: list[str] = []
    with trio.fail_after(HANG_GUARD_S):
        with trio.move_on_after(0.055):
            async for chunk in rails.stream_async(messages=USER):
                received.append(chunk)
        cancelled_at = trio.current_time()
        await trio.sleep(1)
    served = server.served[0]
    assert served.disconnected_at is not None
    assert served.disconnected_at - cancelled_at < 0.01
    assert served.tokens_written <= len(received) + 2


async def test_the_key_appears_in_no_log_record(
    autojump_clock: trio.testing.MockClock,
    server: FakeOpenAI,
    rails_for: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    server.script(Script(), Script(status=401))
    rails = rails_for()
    with trio.fail_after(HANG_GUARD_S):
        await collect(rails)
        chunks = await collect(rails)
    assert caplog.records, "httpx logs requests at DEBUG: the check must see them"
    assert all("sk-test-secret-key" not in r.getMessage() for r in caplog.records)
    assert "sk-test-secret-key" not in chunks[-1]


def test_the_whole_reply_timeout_and_the_sse_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError) as raised:
        config("http://127.0.0.1:1/v1", params={"request_timeout_s": 0, "max_event_bytes": 0})
    assert str(raised.value).splitlines()[-2:] == [
        "<yaml_content>:1: models[0].parameters.request_timeout_s: must be > 0, got 0.0",
        "<yaml_content>:1: models[0].parameters.max_event_bytes: must be >= 1, got 0",
    ]


# the connection pools


async def test_streams_spread_over_pools_of_at_most_pool_size_and_none_waits_for_a_connection(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    """Room for 64 connections: 64 streams at once all start at once (none waits for a
    connection), on pools of at most POOL_SIZE connections each. One pool of 1,000 spent two
    thirds of the server's CPU in httpcore's per-request bookkeeping, which grows with the
    square of its idle connections."""
    server.default = Script(delay=1.0)
    clients = HttpClients(max_connections=64, max_keepalive_connections=64)
    assert clients.pool_count == 64 // POOL_SIZE
    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            for seed in range(64):
                provider = direct_provider(server.base_url, clients, seed)
                nursery.start_soon(
                    provider.stream, ChatRequest(messages=tuple(USER)), CollectTokens()
                )
        # httpx's client -> its transport -> httpcore's pool: the connections each pool holds.
        held = [len(p.client._transport._pool.connections) for p in clients._pools]  # type: ignore[attr-defined]
        await clients.aclose()
    starts = [s.received_at for s in server.served]
    assert len(starts) == 64
    assert max(starts) - min(starts) < 1.0, "some streams waited for another's connection"
    assert held == [POOL_SIZE] * (64 // POOL_SIZE)


async def test_by_default_hundreds_of_streams_start_at_once_on_pools_made_as_needed(
    autojump_clock: trio.testing.MockClock, server: FakeOpenAI
) -> None:
    """A guard server's load: 300 streams at once, with the config's default pool, all reach
    the upstream at once (httpx's default of 100 connections queued the rest silently behind
    the first replies); clients are added as the load needs them, and one request alone
    makes one."""
    server.default = Script(delay=1.0)
    settings = config(server.base_url).model("main")
    assert settings is not None
    clients = HttpClients(
        max_connections=OpenAISettings.from_parameters(settings.parameters).max_connections,
        max_keepalive_connections=OpenAISettings.from_parameters(
            settings.parameters
        ).max_keepalive_connections,
    )
    with trio.fail_after(HANG_GUARD_S):
        await direct_provider(server.base_url, clients, 0).stream(
            ChatRequest(messages=tuple(USER)), CollectTokens()
        )
        assert len(clients._pools) == 1  # type: ignore[attr-defined]
        async with trio.open_nursery() as nursery:
            for seed in range(300):
                provider = direct_provider(server.base_url, clients, seed)
                nursery.start_soon(
                    provider.stream, ChatRequest(messages=tuple(USER)), CollectTokens()
                )
        pools = len(clients._pools)  # type: ignore[attr-defined]
        await clients.aclose()
    starts = sorted(s.received_at for s in server.served[1:])
    assert len(starts) == 300
    assert starts[-1] - starts[0] < 1.0, "some streams waited for another's connection"
    assert pools == 300 // POOL_SIZE + 1
