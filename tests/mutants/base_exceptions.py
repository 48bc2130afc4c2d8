"""The application's BaseExceptions fail its own stream and nothing else; KeyboardInterrupt and
trio's Cancelled pass through (tests/test_base_exceptions.py). A stream cut off from outside
still logs its cut-off model call and rail runs (tests/test_cut_off_log.py)."""

from tests.mutation_check import Mutation

BASE = "tests/test_base_exceptions.py"
CUT = "tests/test_cut_off_log.py"

MUTATIONS = [
    Mutation(
        name="base exceptions: a rail's SystemExit escapes its evaluator",
        path="stages/rails/_evaluator.py",
        old="            except BaseException as exc:  # fail closed: a broken rail blocks\n",
        new="            except Exception as exc:  # fail closed: a broken rail blocks\n",
        tests=(
            f"{BASE}::test_a_rail_raising_a_base_exception_fails_its_stream_closed_and_nothing_else",
            f"{BASE}::test_an_input_rail_raising_system_exit_fails_closed",
            f"{BASE}::test_under_asyncio_a_rail_raising_a_base_exception_fails_only_its_stream",
            f"{BASE}::test_the_server_survives_a_request_whose_rail_raises_system_exit",
        ),
    ),
    Mutation(
        name="base exceptions: a generator's BaseException escapes the generation stage",
        path="stages/generation/_stage.py",
        old="        except BaseException as exc:\n"
        "            # A provider bug must still end the stream with an error, never silently; so must\n",
        new="        except Exception as exc:\n"
        "            # A provider bug must still end the stream with an error, never silently; so must\n",
        tests=(
            f"{BASE}::test_a_generator_raising_a_base_exception_fails_its_stream_and_nothing_else",
            f"{BASE}::test_under_asyncio_a_generator_raising_system_exit_fails_only_its_stream",
        ),
    ),
    Mutation(
        name="base exceptions: an asyncio action's SystemExit is the task's, re-raised into the loop",
        path="engine/facade/_asyncio_bridge.py",
        old="            except BaseException as exc:\n                return outcome.Error(exc)\n",
        new="            except BaseException:\n                raise\n",
        tests=(
            f"{BASE}::test_under_asyncio_a_rail_raising_a_base_exception_fails_only_its_stream",
            f"{BASE}::test_under_asyncio_a_generator_raising_system_exit_fails_only_its_stream",
        ),
        expect="SystemExit",
    ),
    Mutation(
        name="base exceptions: a rail's KeyboardInterrupt is taken for its failure",
        path="stages/_passthrough.py",
        old="PASSING_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, trio.Cancelled)",
        new="PASSING_THROUGH: tuple[type[BaseException], ...] = (trio.Cancelled,)",
        tests=(f"{BASE}::test_keyboard_interrupt_from_a_rail_passes_through",),
    ),
    Mutation(
        name="base exceptions: a group of trio's Cancelled is taken for a rail's failure",
        path="stages/_passthrough.py",
        old="        return exc.subgroup(PASSING_THROUGH) is not None\n",
        new="        return False\n",
        tests=(f"{BASE}::test_a_rail_cut_off_inside_its_own_nursery_is_not_logged_as_a_failure",),
    ),
    Mutation(
        name="cut-off log: the usage stage is cancelled with a caller cancelled from outside",
        path="stages/_usage.py",
        old="    with inbox, trio.CancelScope(shield=True):\n",
        new="    with inbox:\n",
        tests=(
            f"{CUT}::test_a_caller_cancelled_from_outside_logs_the_cut_off_model_call",
            f"{CUT}::test_speculative_generation_cut_off_before_the_input_verdict_logs_both",
        ),
    ),
    Mutation(
        name="cut-off log: a rail run cut off from outside is not logged",
        path="stages/rails/_evaluator.py",
        old="            with trio.CancelScope(shield=True):\n"
        '                await self._record(rail, window, watch, "cancelled", None, None)\n',
        new="            pass\n",
        tests=(
            f"{CUT}::test_an_input_rail_cut_off_by_its_caller_is_logged_as_cancelled",
            f"{CUT}::test_speculative_generation_cut_off_before_the_input_verdict_logs_both",
            f"{BASE}::test_a_rail_cut_off_inside_its_own_nursery_is_not_logged_as_a_failure",
        ),
    ),
    Mutation(
        name="cut-off log: a cut-off rail run's record is sent unshielded, and cancelled too",
        path="stages/rails/_evaluator.py",
        old="            with trio.CancelScope(shield=True):\n"
        '                await self._record(rail, window, watch, "cancelled", None, None)\n',
        new='            await self._record(rail, window, watch, "cancelled", None, None)\n',
        tests=(f"{CUT}::test_an_input_rail_cut_off_by_its_caller_is_logged_as_cancelled",),
    ),
    Mutation(
        name="cut-off log: a cancelled rail run is shown as stopping the reply",
        path="engine/facade/_generation_log.py",
        old='        stop = run.verdict in ("block", "error")  # a cancelled run stopped nothing\n',
        new='        stop = run.verdict != "pass"\n',
        tests=(f"{CUT}::test_an_input_rail_cut_off_by_its_caller_is_logged_as_cancelled",),
    ),
]
