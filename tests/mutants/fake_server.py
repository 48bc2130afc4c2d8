"""The fake OpenAI server the tests and benchmarks read from (tests/test_fake_server.py)."""

from tests.mutation_check import Mutation

MUTATIONS = [
    Mutation(
        name="fake server: what the client sends while a reply is written is dropped",
        path="tests/openai_server.py",
        old="                    early += data\n",
        new="                    pass\n",
        tests=(
            "tests/test_fake_server.py::test_a_request_sent_while_the_previous_reply_is_written_is_answered",
        ),
        expect="assert 1 == 2",
    ),
]
