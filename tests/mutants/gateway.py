"""A block told apart from a failure by a gateway (tests/test_gateway.py, tests/test_server.py):
the wire form of a block, streamed and whole (issue 13, item 7)."""

from tests.mutation_check import Mutation

G = "tests/test_gateway.py::"
S = "tests/test_server.py::"

MUTATIONS = [
    Mutation(
        name="gateway: a streamed block ends with an error event (LiteLLM falls back on it)",
        path="engine/server/_sse_reply.py",
        old="                if blocked and not self._block_error_event:\n",
        new="                if False:\n",
        tests=(
            G + "test_a_streamed_block_behind_litellm_is_not_answered_by_the_fallback",
            S
            + "test_a_block_ends_the_reply_with_content_filter_naming_the_rail_and_no_error_event",
        ),
        expect="UNGUARDED",
    ),
    Mutation(
        name="gateway: --block-error-event is ignored",
        path="engine/server/_sse_reply.py",
        old="        self._block_error_event = block_error_event\n",
        new="        self._block_error_event = False\n",
        tests=(S + "test_with_block_error_event_a_block_also_ends_with_the_error_event",),
    ),
    Mutation(
        name="gateway: a block's last chunk does not say which rail blocked it",
        path="engine/server/_sse_reply.py",
        old='        final["guardrails"] = {\n',
        new='        final["_unused"] = {\n',
        tests=(
            S
            + "test_a_block_ends_the_reply_with_content_filter_naming_the_rail_and_no_error_event",
            S + "test_the_openai_client_streams_with_usage_and_reads_a_block_as_content_filter",
        ),
    ),
    Mutation(
        name="gateway: a blocked whole reply does not name its rail",
        path="engine/server/_app.py",
        old="            guardrails.update(self.redactor.error(error.to_dict()))\n",
        new="            pass\n",
        tests=(S + "test_a_blocked_whole_reply_is_a_content_filter_completion_naming_the_rail",),
    ),
    Mutation(
        name="gateway: a blocked whole reply finishes 'stop' (content_policy_fallbacks miss it)",
        path="engine/server/_app.py",
        old='            "content_filter"\n            if stopped is not None\n',
        new='            "stop"\n            if stopped is not None\n',
        tests=(
            G + "test_a_whole_blocked_reply_behind_litellm_is_not_answered_by_the_fallback",
            G + "test_content_policy_fallbacks_send_a_whole_blocked_reply_to_the_fallback",
        ),
    ),
    Mutation(
        name="cli: a remote chat misses a block that ends with content_filter",
        path="engine/cli/_remote.py",
        old="                        if blocked:\n",
        new="                        if False:\n",
        tests=("tests/test_cli.py::test_chat_through_a_server",),
    ),
]
