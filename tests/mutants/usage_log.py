"""Every LLM call in the log, cut-off ones too; the log's text bounded (tests/test_usage_log.py)."""

from tests.mutation_check import Mutation

USAGE_LOG = "tests/test_usage_log.py"

MUTATIONS = [
    Mutation(
        name="a judge call cut off by a timeout or a block vanishes from the log",
        path="stages/rails/_judges.py",
        old="        except BaseException:\n            # Cut off (its rail's timeout, a block,",
        new="        except ZeroDivisionError:\n            # Cut off (its rail's timeout, a block,",
        tests=(
            f"{USAGE_LOG}::test_a_judge_call_cut_off_by_its_rail_timeout_is_logged_as_cancelled",
            f"{USAGE_LOG}::test_a_judge_call_cut_off_by_a_parallel_rails_first_block_is_logged_as_cancelled",
        ),
    ),
    Mutation(
        name="the ledger keeps every judge prompt whole",
        path="stages/_usage.py",
        old="        allowed = min(len(text), MAX_TEXT_CHARS, self._text_budget)\n",
        new="        allowed = len(text)\n",
        tests=(
            f"{USAGE_LOG}::test_the_ledger_keeps_a_bounded_amount_of_prompt_and_completion_text",
        ),
    ),
]
