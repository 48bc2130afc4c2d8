"""The output-rails stage: actions, built-in rails, window evaluation, ordered verdicts."""

from .actions import ACTION_ARGUMENTS as ACTION_ARGUMENTS
from .actions import Action as Action
from .actions import RailResultError as RailResultError
from .actions import interpret_result as interpret_result
from .builtin import BlocklistCheckOutput as BlocklistCheckOutput
from .builtin import ContentSafetyCheckInput as ContentSafetyCheckInput
from .builtin import ContentSafetyCheckOutput as ContentSafetyCheckOutput
from .builtin import SelfCheckInput as SelfCheckInput
from .builtin import SelfCheckOutput as SelfCheckOutput
from .builtin import builtin_rail as builtin_rail
from .builtin import normalise_blocklist_text as normalise_blocklist_text
from .builtin import parse_judge_answer as parse_judge_answer
from .builtin import parse_safety_answer as parse_safety_answer
from .context import Rail as Rail
from .context import RailContext as RailContext
from .context import RailResult as RailResult
from .evaluator import ActionRail as ActionRail
from .evaluator import Verdict as Verdict
from .evaluator import WindowEvaluator as WindowEvaluator
from .stage import run_rails as run_rails

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
