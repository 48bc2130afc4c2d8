"""Tool calls through the rails (tests/test_tool_calls.py)."""

from tests.mutation_check import Mutation

TESTS = "tests/test_tool_calls.py"

MUTATIONS = [
    Mutation(
        name="a tool-call piece does not lift the first-token deadline",
        path="stages/generation/_openai.py",
        old="                        if waiting_first:\n                            # A reply that calls",
        new="                        if False:\n                            # A reply that calls",
        tests=(f"{TESTS}::test_a_reply_of_tool_calls_only_is_not_timed_out_waiting_for_text",),
    ),
    Mutation(
        name="tool-call pieces are not put together",
        path="stages/generation/_tool_calls.py",
        old='                    call["function"][key] += part\n',
        new='                    call["function"][key] = part\n',
        tests=(TESTS,),
    ),
    Mutation(
        name="the stream's end drops the tool calls",
        path="stages/rails/_stage.py",
        old="            return StreamEnded(event.finish_reason, event.tool_calls)\n",
        new="            return StreamEnded(event.finish_reason)\n",
        tests=(TESTS,),
    ),
]

MUTATIONS += [
    Mutation(
        name="the server's stream drops the tool calls",
        path="engine/server/_sse_reply.py",
        old='                if item.get("tool_calls"):\n',
        new="                if False:\n",
        tests=("tests/test_server_tools.py",),
    ),
    Mutation(
        name="the server refuses tools",
        path="engine/server/_wire.py",
        old='        "tools",\n',
        new="",
        tests=("tests/test_server_tools.py",),
    ),
]
