"""railstream from asyncio: the bridge and the seed examples (tests/test_asyncio.py)."""

from tests.mutation_check import Mutation

MUTATIONS = [
    Mutation(
        name="a crashed guest run is dropped silently",
        path="engine/asyncio_bridge.py",
        old="        if isinstance(result, outcome.Error):\n",
        new="        if False:\n",
        tests=(
            "tests/test_asyncio.py::test_a_crashed_guest_run_is_reported_and_the_next_call_gets_a_new_one",
        ),
    ),
]

MUTATIONS.append(
    Mutation(
        name="the seed's StreamingHandler example yields nothing under asyncio",
        path="engine/streaming.py",
        old="            await self._send.send(text)\n",
        new="            pass\n",
        tests=("tests/test_asyncio.py::test_every_seed_example_runs_as_printed_under_asyncio",),
        expect="the StreamingHandler's consumer printed",
    )
)
