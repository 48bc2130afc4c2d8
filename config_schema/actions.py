"""The ``@action()`` marker and the loading of a config folder's ``actions.py``."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, ConfigProblem

__all__ = ["ACTION_BLOCKING_ATTR", "ACTION_NAME_ATTR", "action", "load_actions_file"]

F = TypeVar("F", bound=Callable[..., Any])

# Set on a function by @action(); the config loader registers every function carrying it.
ACTION_NAME_ATTR = "__railstream_action_name__"
# Set by @action(blocking=False): a sync action that never blocks may run on the event loop.
ACTION_BLOCKING_ATTR = "__railstream_action_blocking__"


def action(name: str | None = None, *, blocking: bool = True) -> Callable[[F], F]:
    """Mark a function in a config's ``actions.py`` as an action (a rail, for output flows).

    The action is registered under ``name``, or the function's own name::

        @action()
        def check_no_secrets(bot_message: str) -> bool:
            return "sk-" not in bot_message

    A sync action runs in a worker thread, so that one that blocks (``requests.post`` to a
    moderation API) never stalls other streams, and is abandoned at its rail's timeout. That
    hop costs about 90 µs of CPU per window; ``blocking=False`` declares a sync action that
    never blocks (pure computation: a regex, a lookup) and runs it on the event loop instead.
    It still fails closed past its timeout, but cannot be interrupted before it returns.
    """
    if callable(name):
        raise TypeError("use @action() or @action(name=...), with parentheses")

    def mark(fn: F) -> F:
        setattr(fn, ACTION_NAME_ATTR, name or fn.__name__)
        setattr(fn, ACTION_BLOCKING_ATTR, blocking)
        return fn

    return mark


def load_actions_file(path: Path) -> dict[str, Callable[..., Any]]:
    """Import ``path`` and return its ``@action()`` functions by action name.

    An error while importing it is a :class:`ConfigError` naming the file and line, since the
    rails it defines would otherwise be missing.
    """
    module_name = f"railstream_actions_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(
            [ConfigProblem(file=str(path), line=None, path="", problem="cannot load")]
        )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    file=str(path), line=exc.lineno, path="", problem=f"syntax error: {exc.msg}"
                )
            ]
        ) from exc
    except Exception as exc:
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if Path(frame.filename) == path:
                line = frame.lineno
        problem = f"error while importing: {type(exc).__name__}: {exc}"
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("nemoguardrails"):
            # NeMo's actions.py, as written for NeMo: the one import to change.
            problem = (
                f"imports {exc.name}, which is NeMo Guardrails' (not installed, nor needed): "
                "write `from engine import action` instead of `from nemoguardrails.actions "
                "import action`"
            )
        raise ConfigError(
            [ConfigProblem(file=str(path), line=line, path="", problem=problem)]
        ) from exc
    finally:
        sys.modules.pop(module_name, None)
    found: dict[str, Callable[..., Any]] = {}
    for value in vars(module).values():
        action_name = getattr(value, ACTION_NAME_ATTR, None)
        if callable(value) and isinstance(action_name, str):
            found[action_name] = value
    return found
