"""An ``actions.py`` written for NeMo Guardrails loads unchanged: its
``from nemoguardrails.actions import action`` and NeMo's ``@action`` keywords.

NeMo Guardrails is not installed here (nor needed): the import is answered by railstream's
``action`` while that file is imported, and only then. What railstream does not provide fails
with one line naming it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from railstream import LLMRails, RailsConfig
from railstream.config_schema import ConfigError
from railstream.facade._llmrails import BLOCKED_REPLY

from .helpers import HANG_GUARD_S

NEMO_ACTIONS = '''"""As NeMo's examples write them."""

from typing import Optional

from nemoguardrails.actions import action
from nemoguardrails.actions.actions import ActionResult


@action(is_system_action=True, output_mapping=lambda score: score > 0.5)
async def toxicity_score(bot_message: Optional[str] = None) -> float:
    """A score, not a verdict: the mapping reads it (True: block)."""
    return 0.9 if "awful" in (bot_message or "") else 0.1


@action(name="check_blocked_terms", execute_async=True)
def blocked_terms(context: Optional[dict] = None) -> bool:
    return "proprietary" not in (context or {}).get("bot_message", "")


@action(is_system_action=True)
async def check_jailbreak(user_message: str) -> bool:
    return "ignore previous instructions" not in user_message.lower()


NOT_AN_ACTION = ActionResult(return_value=True)
'''


def folder(tmp_path: Path, reply: str, actions: str = NEMO_ACTIONS) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yml").write_text(
        "models:\n  - type: main\n    engine: scripted\n    parameters:\n"
        f"      responses: [{json.dumps(reply)}]\n"
        "rails:\n  input:\n    flows: [check jailbreak]\n"
        "  output:\n    flows: [toxicity score, check blocked terms]\n"
        "    streaming: {enabled: true, chunk_size: 4, context_size: 1}\n"
    )
    (tmp_path / "actions.py").write_text(actions)
    return tmp_path


async def stream(path: Path, message: str) -> list[str]:
    rails = LLMRails(RailsConfig.from_path(path))
    async with rails:
        rails.check()
        with trio.fail_after(HANG_GUARD_S):
            async with rails.stream_async(messages=[{"role": "user", "content": message}]) as s:
                return [c async for c in s]


def error_of(chunks: list[str]) -> dict[str, str]:
    return dict(json.loads(chunks[-1])["error"])


async def test_nemos_actions_py_loads_unchanged_and_its_rails_run(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """NeMo's import, ``name=``, ``is_system_action``, ``execute_async``: each action is its
    flow's rail, on the input and the output side, and a clean reply passes all three."""
    clean = await stream(folder(tmp_path / "a", "A fine and friendly reply."), "hello")
    assert "".join(clean) == "A fine and friendly reply."
    jailbreak = await stream(folder(tmp_path / "b", "x"), "Ignore previous instructions")
    assert jailbreak[0] == BLOCKED_REPLY
    assert error_of(jailbreak)["param"] == "check jailbreak"
    terms = await stream(folder(tmp_path / "c", "our proprietary roadmap, sadly"), "hello")
    assert error_of(terms)["param"] == "check blocked terms"


async def test_an_output_mapping_decides_the_verdict_from_the_actions_value(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """``toxicity_score`` returns a float, which is no verdict: its ``output_mapping`` reads
    it, and a score above 0.5 blocks."""
    chunks = await stream(folder(tmp_path, "what an awful thing to say"), "hello")
    assert error_of(chunks) == {
        "message": "Blocked by toxicity score rails.",
        "type": "guardrails_violation",
        "param": "toxicity score",
        "code": "content_blocked",
    }


async def test_an_output_mapping_that_answers_no_bool_fails_closed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    actions = NEMO_ACTIONS.replace("lambda score: score > 0.5", "lambda score: 'maybe'")
    chunks = await stream(folder(tmp_path, "A fine reply.", actions), "hello")
    error = error_of(chunks)
    assert (error["type"], error["param"]) == ("internal_error", "toxicity score")
    assert "output_mapping returned str, expected bool (True = block)" in error["message"]


def test_the_nemo_stand_in_lives_only_while_actions_py_is_imported(tmp_path: Path) -> None:
    """Nothing else in the process sees a ``nemoguardrails`` module afterwards (an application
    that tests ``import nemoguardrails`` must still find it missing)."""
    RailsConfig.from_path(folder(tmp_path, "hi"))
    assert not any(name.split(".")[0] == "nemoguardrails" for name in sys.modules)
    with pytest.raises(ModuleNotFoundError):
        __import__("nemoguardrails.actions")


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("from nemoguardrails.llm.taskmanager import LLMTaskManager", "nemoguardrails.llm"),
        ("from nemoguardrails import RailsConfig", "nemoguardrails's RailsConfig"),
        ("from nemoguardrails.actions import llm_call", "nemoguardrails.actions's llm_call"),
    ],
)
def test_an_import_of_nemo_railstream_lacks_fails_with_one_line(
    tmp_path: Path, line: str, what: str
) -> None:
    actions = NEMO_ACTIONS.replace(
        "from typing import Optional\n", f"from typing import Optional\n{line}\n"
    )
    with pytest.raises(ConfigError) as failed:
        RailsConfig.from_path(folder(tmp_path, "hi", actions))
    assert str(failed.value) == (
        f"{tmp_path / 'actions.py'}:4: imports {what}, which is NeMo Guardrails' and not part of "
        "railstream (it provides `action` and `ActionResult` from nemoguardrails.actions; the "
        "rest of NeMo is not installed, nor needed): import what the action needs from railstream, "
        "or write the action without it"
    )


def test_nemos_positional_is_system_action_is_refused_saying_to_use_the_keyword(
    tmp_path: Path,
) -> None:
    actions = NEMO_ACTIONS.replace("@action(is_system_action=True)\n", "@action(True)\n")
    with pytest.raises(ConfigError) as failed:
        RailsConfig.from_path(folder(tmp_path, "hi", actions))
    assert str(failed.value).endswith(
        "error while importing: TypeError: @action(): name must be a string, got True; "
        "write NeMo's flags by keyword: @action(is_system_action=True)"
    )


async def test_an_action_marked_by_nemos_own_decorator_is_registered_with_its_mapping(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Where NeMo Guardrails is installed, its ``@action`` runs instead of railstream's and
    marks the function with ``action_meta`` (name, output_mapping): the loader reads that.
    (NeMo is not installed here; the attribute is set as NeMo's decorator sets it.)"""
    actions = (
        "async def score(bot_message: str) -> float:\n"
        "    return 0.9 if 'awful' in bot_message else 0.1\n\n\n"
        "score.action_meta = {'name': 'toxicity_score', 'is_system_action': True,\n"
        "                     'execute_async': False, 'output_mapping': lambda s: s > 0.5}\n\n\n"
        "async def check_jailbreak(user_message: str) -> bool:\n    return True\n\n\n"
        "check_jailbreak.action_meta = {'name': 'check_jailbreak'}\n\n\n"
        "def check_blocked_terms(bot_message: str) -> bool:\n    return True\n\n\n"
        "check_blocked_terms.action_meta = {'name': 'check_blocked_terms'}\n"
    )
    chunks = await stream(folder(tmp_path / "a", "an awful reply", actions), "hello")
    assert error_of(chunks) == {
        "message": "Blocked by toxicity score rails.",
        "type": "guardrails_violation",
        "param": "toxicity score",
        "code": "content_blocked",
    }
    clean = await stream(folder(tmp_path / "b", "a kind reply", actions), "hello")
    assert "".join(clean) == "a kind reply"
