"""Cancellation, backpressure and the stream's lifecycle (tests/test_lifecycle.py)."""

from tests.mutation_check import Mutation

LIFECYCLE = "tests/test_lifecycle.py"

MUTATIONS = [
    Mutation(
        name="a block does not cancel generation",
        path="engine/runtime/_pipeline.py",
        old="        # The stream is over (ended, blocked, or abandoned): nothing upstream may keep running.\n        stages.cancel_scope.cancel()\n",
        new="        pass\n",
        tests=(
            f"{LIFECYCLE}::test_a_block_stops_a_model_that_went_silent_after_the_forbidden_token",
        ),
        expect="the block did not cancel the model",
    ),
    Mutation(
        name="the token channel is unbounded",
        path="engine/runtime/_pipeline.py",
        old='CHANNEL_CAPACITY = {"tokens": 16,',
        new='CHANNEL_CAPACITY = {"tokens": 1_000_000,',
        tests=(
            f"{LIFECYCLE}::test_the_token_channel_bounds_how_far_a_model_runs_ahead_of_a_stalled_consumer",
        ),
        expect="tokens ahead of a stalled consumer",
    ),
    Mutation(
        name="a consumer task that ends or is cancelled does not cancel its pipeline",
        path="engine/facade/_rails_stream.py",
        old="            self._token.run_sync_soon(cancel)\n",
        new="            pass\n",
        tests=(
            f"{LIFECYCLE}::test_a_consumer_task_cancelled_between_chunks_stops_the_model_with_no_async_with",
            f"{LIFECYCLE}::test_a_consumer_task_that_ends_without_closing_its_stream_stops_the_model",
            f"{LIFECYCLE}::test_a_consumer_cancelled_between_chunks_closes_the_providers_http_stream",
        ),
    ),
    Mutation(
        name="a stream closed under its reader ends normally",
        path="engine/facade/_rails_stream.py",
        old="        if event is None and self._runner.crash is None:\n",
        new="        if False:\n",
        tests=(
            f"{LIFECYCLE}::test_a_concurrent_aclose_ends_the_reader_with_an_error_not_a_normal_end",
        ),
        expect="the reader saw",
    ),
]

MUTATIONS.append(
    Mutation(
        name="an asyncio consumer task that is cancelled does not cancel its pipeline",
        path="engine/facade/_rails_stream.py",
        old="                token.run_sync_soon(cancel)\n",
        new="                pass\n",
        tests=(
            f"{LIFECYCLE}::test_an_asyncio_consumer_task_cancelled_between_chunks_stops_the_model",
        ),
        expect="the pipeline outlived its asyncio consumer task",
    )
)
