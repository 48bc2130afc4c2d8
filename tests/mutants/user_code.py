"""Where the application's code runs, and rails past their deadline (tests/test_user_code.py)."""

from tests.mutation_check import Mutation

USER_CODE = "tests/test_user_code.py"

MUTATIONS = [
    Mutation(
        name="sync actions run on the event loop's thread",
        path="stages/rails/_actions.py",
        old="result = call() if self.inline else await host.run_sync(call)",
        new="result = call()",
        tests=(
            f"{USER_CODE}::test_a_sync_rail_runs_in_a_worker_thread_not_on_the_event_loop",
            f"{USER_CODE}::test_a_blocking_sync_rail_past_its_deadline_fails_closed_and_frees_the_loop",
        ),
    ),
    Mutation(
        name="a rail's verdict after its deadline counts",
        path="stages/rails/_evaluator.py",
        old="        if scope.cancel_called or trio.current_time() >= scope.deadline:\n",
        new="        if False:\n",
        tests=(f"{USER_CODE}::test_a_rail_that_swallows_its_cancellation_and_allows_fails_closed",),
    ),
    Mutation(
        name="asyncio applications' coroutines run in trio",
        path="engine/facade/_llmrails.py",
        old="    return AsyncioUserCode.here() if in_asyncio() else TrioUserCode()\n",
        new="    return TrioUserCode()\n",
        tests=(
            f"{USER_CODE}::test_an_asyncio_action_runs_on_the_applications_loop_with_its_context",
            f"{USER_CODE}::test_an_asyncio_generator_streams_through_the_rails",
            f"{USER_CODE}::test_generate_async_runs_asyncio_actions_on_the_applications_loop",
        ),
    ),
    Mutation(
        name="a cancelled trio side leaves the asyncio action running",
        path="engine/facade/_asyncio_bridge.py",
        old="            task.cancel()\n",
        new="            pass\n",
        tests=(
            f"{USER_CODE}::test_a_rail_timeout_cancels_the_asyncio_action",
            f"{USER_CODE}::test_cancelling_the_asyncio_caller_cancels_the_asyncio_action_it_waits_on",
        ),
    ),
    Mutation(
        name="the asyncio bridge does not cancel the trio side of a cancelled caller",
        path="engine/facade/_asyncio_bridge.py",
        old="            self.token.run_sync_soon(scope.cancel)\n",
        new="            pass\n",
        tests=(
            f"{USER_CODE}::test_cancelling_the_asyncio_caller_cancels_the_asyncio_action_it_waits_on",
        ),
        expect="did not end its stream",
    ),
    Mutation(
        name="user code: a sync call's coroutine refused by the thread, not awaited",
        path="stages/_usercode.py",
        old="        (result,) = await trio.to_thread.run_sync(lambda: (fn(),), abandon_on_cancel=True)\n"
        "        return result\n",
        new="        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)\n",
        tests=(
            "tests/test_user_code.py::test_a_sync_action_that_returns_a_coroutine_has_it_awaited",
        ),
        expect="rail_execution_failure",
    ),
]
