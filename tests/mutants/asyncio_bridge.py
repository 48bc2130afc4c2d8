"""railstream from asyncio: the bridge and the seed examples (tests/test_asyncio.py)."""

from tests.mutation_check import Mutation

MUTATIONS = [
    Mutation(
        name="a crashed guest run is dropped silently",
        path="engine/facade/_asyncio_bridge.py",
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
        path="engine/facade/_streaming_handler.py",
        old="            await self._send.send(text)\n",
        new="            pass\n",
        tests=("tests/test_asyncio.py::test_every_seed_example_runs_as_printed_under_asyncio",),
        expect="the StreamingHandler's consumer printed",
    )
)

MUTATIONS += [
    Mutation(
        name="a stream read from asyncio leaves its done-callback on the consumer's task",
        path="engine/facade/_rails_stream.py",
        old="                self._unbind()  # a long-lived consumer must not collect one hook per stream\n",
        new="                pass\n",
        tests=(
            "tests/test_asyncio.py::test_many_sequential_and_concurrent_streams_from_asyncio_leak_nothing",
        ),
        expect="< 200000",
    ),
    Mutation(
        name="generate_async returns before the StreamingHandler's consumer has had the reply",
        path="engine/facade/_streaming_handler.py",
        old="            await reader._drained.wait()\n",
        new="            pass\n",
        tests=(
            "tests/test_nemo_api.py::test_generate_async_returns_only_once_the_handlers_consumer_has_had_every_chunk",
        ),
        expect="generate_async returned with chunks unread",
    ),
]
