"""A count nobody reported is absent on the wire (tests/test_server.py)."""

from tests.mutation_check import Mutation

WIRE_TEST = (
    "tests/test_server.py::test_a_count_nobody_reported_is_absent_on_the_wire_never_null_or_zero",
)

MUTATIONS = [
    Mutation(
        name="the server's usage chunk turns a missing count into 0",
        path="engine/server/_wire.py",
        old='        key: usage[key]\n        for key in ("prompt_tokens", "completion_tokens", "total_tokens")\n        if usage.get(key) is not None\n',
        new='        key: usage.get(key) or 0\n        for key in ("prompt_tokens", "completion_tokens", "total_tokens")\n',
        tests=WIRE_TEST,
    ),
    Mutation(
        name="the server's usage chunk sends null for a missing count",
        path="engine/server/_wire.py",
        old="        if usage.get(key) is not None\n",
        new="",
        tests=WIRE_TEST,
    ),
    Mutation(
        name="the non-streamed completion turns a missing count into 0",
        path="engine/server/_app.py",
        old='                "prompt_tokens": main.prompt_tokens if main else None,\n',
        new='                "prompt_tokens": (main.prompt_tokens or 0) if main else 0,\n',
        tests=WIRE_TEST,
    ),
]
