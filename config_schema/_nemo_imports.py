"""NeMo's ``from nemoguardrails.actions import action``, for an ``actions.py`` written for NeMo.

Every NeMo example's actions.py starts with that import. When NeMo Guardrails is installed it
is left alone (its ``@action`` marks functions with ``action_meta``, which the loader reads);
when it is not, the import is answered, while that one file is imported and only then, by
railstream's ``action`` (and a plain ``ActionResult``). Anything else of NeMo's an actions.py
imports (its LLM helpers, its config classes) railstream does not have: that import fails
with one line naming it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from ._action_marks import action

__all__ = [
    "ActionResult",
    "is_unprovided_nemo_import",
    "nemo_imports",
    "unprovided_nemo_import",
]

_PROVIDED = "`action` and `ActionResult` from nemoguardrails.actions"


@attrs.define
class ActionResult:
    """NeMo's ``ActionResult``, importable; a rail's verdict is still its action's return
    value (a bool, or an object with ``.is_blocked``), so returning one of these fails closed."""

    return_value: Any = None
    events: list[dict[str, Any]] | None = None
    context_updates: dict[str, Any] = attrs.field(factory=dict)


def _nemo_installed() -> bool:
    try:
        return importlib.util.find_spec("nemoguardrails") is not None
    except ValueError:  # in sys.modules without a spec: someone else's stand-in
        return True


@contextmanager
def nemo_imports() -> Iterator[None]:
    """While an actions.py is imported: ``nemoguardrails.actions`` (and its ``.actions``
    submodule, where NeMo defines both names) resolve to railstream's, unless NeMo is here."""
    if _nemo_installed():
        yield
        return
    package = types.ModuleType("nemoguardrails")
    package.__path__ = []  # a package with no submodules but these: others fail to import
    actions = types.ModuleType("nemoguardrails.actions")
    actions.__path__ = []
    actions.action = action  # type: ignore[attr-defined]
    actions.ActionResult = ActionResult  # type: ignore[attr-defined]
    package.actions = actions  # type: ignore[attr-defined]
    actions.actions = actions  # type: ignore[attr-defined]
    stand_ins = {
        "nemoguardrails": package,
        "nemoguardrails.actions": actions,
        "nemoguardrails.actions.actions": actions,
    }
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def is_unprovided_nemo_import(exc: ImportError) -> bool:
    """An import of NeMo Guardrails' that railstream does not answer."""
    return (exc.name or "").split(".")[0] == "nemoguardrails"


def unprovided_nemo_import(exc: ImportError) -> str:
    """The one line for it: what was imported, and what railstream offers instead."""
    if isinstance(exc, ModuleNotFoundError):
        what = exc.name
    else:  # `from nemoguardrails import RailsConfig`: the module is there, the name is not
        what = f"{exc.name}'s {_imported_name(exc)}"
    return (
        f"imports {what}, which is NeMo Guardrails' and not part of railstream (it provides "
        f"{_PROVIDED}; the rest of NeMo is not installed, nor needed): import what the action "
        "needs from railstream, or write the action without it"
    )


def _imported_name(exc: ImportError) -> str:
    # "cannot import name 'RailsConfig' from 'nemoguardrails' (unknown location)"
    message = str(exc)
    if "'" in message:
        return message.split("'")[1]
    return "name"
