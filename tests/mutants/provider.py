"""The OpenAI provider's promises: whole-reply timeout, [DONE] ends a reply, bounded SSE,
usage never made up, clients closed with their run, jittered retries."""

from __future__ import annotations

from tests.mutation_check import Mutation

_PROVIDER = "tests/test_openai_provider.py"
_SSE = "tests/test_sse.py"

MUTATIONS = [
    Mutation(
        name="provider: a whole reply is timed by the first-token deadline again",
        path="stages/generation/_openai.py",
        old="limit = self._settings.request_timeout_s",
        new="limit = self._settings.first_token_timeout_s",
        tests=(
            f"{_PROVIDER}::test_a_slow_but_healthy_whole_reply_is_not_cut_by_the_first_token_deadline",
        ),
        expect="no whole reply from the provider within 10s",
    ),
    Mutation(
        name="provider: after [DONE] the body's end is waited for under the stall timer",
        path="stages/generation/_openai.py",
        old=(
            "                with trio.move_on_after(min(idle, _DRAIN_AFTER_DONE_S)):\n"
            "                    await self._drain(pieces)\n"
        ),
        new=(
            "                stalled.deadline = trio.current_time() + idle\n"
            "                async for _ in pieces:\n"
            "                    pass\n"
        ),
        tests=(
            f"{_PROVIDER}::test_a_body_that_does_not_end_after_done_still_ends_the_reply_whole",
        ),
        expect="the provider stalled",
    ),
    Mutation(
        name="provider: a body that breaks after [DONE] fails the finished reply",
        path="stages/generation/_openai.py",
        old="        except httpx.HTTPError:\n            pass  # a body that breaks after [DONE]",
        new="        except ValueError:\n            pass  # a body that breaks after [DONE]",
        tests=(
            f"{_PROVIDER}::test_a_body_that_does_not_end_after_done_still_ends_the_reply_whole",
        ),
        expect="the provider broke the HTTP protocol",
    ),
    Mutation(
        name="sse: a line that never ends grows without limit",
        path="stages/generation/_sse.py",
        old="        if len(self._buffer) > self._max:",
        new="        if False:",
        tests=(
            f"{_SSE}::test_a_line_that_never_ends_fails_at_the_limit_not_after",
            f"{_PROVIDER}::test_an_endless_sse_line_ends_the_reply_promptly_in_bounded_memory",
        ),
    ),
    Mutation(
        name="sse: a whole line over the limit is accepted",
        path="stages/generation/_sse.py",
        old="        if len(raw) > self._max:",
        new="        if False:",
        tests=(f"{_SSE}::test_a_whole_line_over_the_limit_fails_however_it_arrives",),
    ),
    Mutation(
        name="sse: the one-event-per-read fast path skips the limit",
        path="stages/generation/_sse.py",
        old="            and len(piece) <= self._max\n",
        new="",
        tests=(f"{_SSE}::test_a_whole_line_over_the_limit_fails_however_it_arrives",),
    ),
    Mutation(
        name="sse: an event of many short lines grows without limit",
        path="stages/generation/_sse.py",
        old="            if self._size > self._max:",
        new="            if False:",
        tests=(f"{_SSE}::test_an_event_of_many_short_lines_over_the_limit_fails",),
    ),
    Mutation(
        name="sse: the event size is not reset between events",
        path="stages/generation/_sse.py",
        old="        self._data = []\n        self._size = 0\n",
        new="        self._data = []\n",
        tests=(f"{_SSE}::test_the_event_limit_counts_each_event_afresh",),
    ),
    Mutation(
        name="provider: the decoder's limit is not the max_event_bytes setting",
        path="stages/generation/_openai.py",
        old="SSEDecoder(max_event_bytes=self._settings.max_event_bytes)",
        new="SSEDecoder(max_event_bytes=1 << 40)",
        tests=(f"{_PROVIDER}::test_an_endless_sse_line_ends_the_reply_promptly_in_bounded_memory",),
    ),
    Mutation(
        name="provider: an SSE limit error is not a ProviderProtocolError naming the endpoint",
        path="stages/generation/_openai.py",
        old='raise ProviderProtocolError(f"{exc} ({self._where})") from None',
        new="raise",
        tests=(f"{_PROVIDER}::test_an_endless_sse_line_ends_the_reply_promptly_in_bounded_memory",),
    ),
    Mutation(
        name="provider: a missing usage count becomes 0",
        path="stages/generation/_openai.py",
        old="return value if isinstance(value, int) and not isinstance(value, bool) else None",
        new="return value if isinstance(value, int) and not isinstance(value, bool) else 0",
        tests=(f"{_PROVIDER}::test_usage_counts_the_server_leaves_out_stay_none",),
    ),
    Mutation(
        name="http: a client is not closed when its trio run ends",
        path="stages/generation/_http_client.py",
        old="            trio.lowlevel.spawn_system_task(\n",
        new="            (lambda *_, **__: None)(\n",
        tests=(f"{_PROVIDER}::test_a_client_is_closed_when_its_trio_run_ends",),
    ),
    Mutation(
        name="provider: backoff without jitter (lock-step retries)",
        path="stages/generation/_openai.py",
        old='return self._random.uniform(0, base * 2**attempt)  # "full jitter"',
        new="return base * 2**attempt",
        tests=(f"{_PROVIDER}::test_backoff_is_full_jitter_on_the_exponential_step",),
    ),
    Mutation(
        name="provider: Retry-After without a random spread",
        path="stages/generation/_openai.py",
        old="return retry_after + self._random.uniform(0, base)",
        new="return retry_after",
        tests=(f"{_PROVIDER}::test_retry_after_is_waited_at_least_then_spread",),
    ),
    Mutation(
        name="provider: Retry-After is not a lower bound",
        path="stages/generation/_openai.py",
        old="return retry_after + self._random.uniform(0, base)",
        new="return self._random.uniform(0, retry_after + base)",
        tests=(f"{_PROVIDER}::test_retry_after_is_waited_at_least_then_spread",),
    ),
    Mutation(
        name="provider: every connection in one httpcore pool",
        path="stages/generation/_http_client.py",
        old="        self.pool_count = max(1, math.ceil(max_connections / POOL_SIZE))\n",
        new="        self.pool_count = 1\n",
        tests=(
            "tests/test_openai_provider.py::test_streams_spread_over_pools_of_at_most_pool_size_and_none_waits_for_a_connection",
        ),
    ),
    Mutation(
        name="provider: every request on the first pool",
        path="stages/generation/_http_client.py",
        old="        pool = min(pools, key=lambda p: p.in_flight)\n",
        new="        pool = pools[0]\n",
        tests=(
            "tests/test_openai_provider.py::test_streams_spread_over_pools_of_at_most_pool_size_and_none_waits_for_a_connection",
        ),
        expect="waited for another's connection",
    ),
    Mutation(
        name="provider: requests in flight are not counted per pool",
        path="stages/generation/_http_client.py",
        old="        pool.in_flight += 1\n",
        new="",
        tests=(
            "tests/test_openai_provider.py::test_streams_spread_over_pools_of_at_most_pool_size_and_none_waits_for_a_connection",
        ),
    ),
    Mutation(
        name="provider: the default pool queues streams past httpx's 100 connections",
        path="config_schema/_engines.py",
        old="    max_connections: int = 1000\n",
        new="    max_connections: int = 100\n",
        tests=(
            "tests/test_openai_provider.py::test_by_default_hundreds_of_streams_start_at_once_on_pools_made_as_needed",
        ),
        expect="some streams waited",
    ),
    Mutation(
        name="provider: a pool made for each request until there are pool_count",
        path="stages/generation/_http_client.py",
        old="        if pool.in_flight >= self._per_pool and len(pools) < self.pool_count:\n",
        new="        if len(pools) < self.pool_count:\n",
        tests=(
            "tests/test_openai_provider.py::test_by_default_hundreds_of_streams_start_at_once_on_pools_made_as_needed",
        ),
    ),
]
