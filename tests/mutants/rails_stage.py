"""The rails stage: verdicts applied in window order, a block ending the stream at once, the
end after every verdict (tests/test_pipeline_properties.py, tests/test_stages.py)."""

from tests.mutation_check import Mutation

PROPERTIES = "tests/test_pipeline_properties.py"
STAGE = "stages/rails/_stage.py"

MUTATIONS = [
    Mutation(
        name="rails stage: a check applies its verdict without waiting for the one before",
        path=STAGE,
        old="            await check.before.applied.wait()\n",
        new="            pass\n",
        tests=(
            f"{PROPERTIES}::test_overlapping_checks_release_exactly_what_one_by_one_checking_releases",
        ),
    ),
    Mutation(
        name="rails stage: a block leaves the reading and the other checks running",
        path=STAGE,
        old="            checks.cancel()\n            return\n",
        new="            return\n",
        tests=(
            f"{PROPERTIES}::test_every_token_is_checked_and_the_block_ends_the_stream_in_either_mode",
            "tests/test_lifecycle.py",
        ),
    ),
    Mutation(
        name="rails stage: the stream ends before the last window's verdict",
        path=STAGE,
        old="            if last is not None:\n                await last.applied.wait()\n",
        new="",
        tests=(
            f"{PROPERTIES}::test_every_token_is_checked_and_the_block_ends_the_stream_in_either_mode",
        ),
    ),
    Mutation(
        name="rails stage: a failing check ends the stream before the windows ahead of it",
        path=STAGE,
        old="            verdict = exc\n",
        new="            raise\n",
        tests=(
            "tests/test_stages.py::test_a_check_that_fails_in_the_stage_ends_the_stream_only_after_the_windows_ahead_of_it",
        ),
    ),
]
