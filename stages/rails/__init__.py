"""The output-rails stage: actions, built-in rails, window evaluation, ordered verdicts."""

from ._actions import ACTION_ARGUMENTS as ACTION_ARGUMENTS
from ._actions import Action as Action
from ._actions import RailResultError as RailResultError
from ._actions import interpret_result as interpret_result
from ._blocklist import BlocklistCheckOutput as BlocklistCheckOutput
from ._blocklist import normalise_blocklist_text as normalise_blocklist_text
from ._builtin import builtin_rail as builtin_rail
from ._context import Rail as Rail
from ._context import RailContext as RailContext
from ._context import RailResult as RailResult
from ._evaluator import ActionRail as ActionRail
from ._evaluator import Verdict as Verdict
from ._evaluator import WindowEvaluator as WindowEvaluator
from ._judges import ContentSafetyCheckInput as ContentSafetyCheckInput
from ._judges import ContentSafetyCheckOutput as ContentSafetyCheckOutput
from ._judges import SelfCheckInput as SelfCheckInput
from ._judges import SelfCheckOutput as SelfCheckOutput
from ._parsers import parse_judge_answer as parse_judge_answer
from ._parsers import parse_safety_answer as parse_safety_answer
from ._stage import run_rails as run_rails

__all__ = [
    "ACTION_ARGUMENTS",
    "Action",
    "ActionRail",
    "BlocklistCheckOutput",
    "ContentSafetyCheckInput",
    "ContentSafetyCheckOutput",
    "Rail",
    "RailContext",
    "RailResult",
    "RailResultError",
    "SelfCheckInput",
    "SelfCheckOutput",
    "Verdict",
    "WindowEvaluator",
    "builtin_rail",
    "interpret_result",
    "normalise_blocklist_text",
    "parse_judge_answer",
    "parse_safety_answer",
    "run_rails",
]
