"""The ``@action()`` marker and the loading of a config folder's ``actions.py``."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, ConfigProblem
from .nemo_imports import is_unprovided_nemo_import, nemo_imports, unprovided_nemo_import

__all__ = [
    "ACTION_BLOCKING_ATTR",
    "ACTION_NAME_ATTR",
    "ACTION_OUTPUT_MAPPING_ATTR",
    "action",
    "action_name_of",
    "load_actions_file",
    "output_mapping_of",
]

F = TypeVar("F", bound=Callable[..., Any])

# Set on a function by @action(); the config loader registers every function carrying it.
ACTION_NAME_ATTR = "__railstream_action_name__"
# Set by @action(blocking=False): a sync action that never blocks may run on the event loop.
ACTION_BLOCKING_ATTR = "__railstream_action_blocking__"
# Set by @action(output_mapping=f): f(return value) is True when the text is to be blocked.
ACTION_OUTPUT_MAPPING_ATTR = "__railstream_action_output_mapping__"


def action(
    name: str | None = None,
    *,
    blocking: bool = True,
    output_mapping: Callable[[Any], bool] | None = None,
    is_system_action: bool = False,
    execute_async: bool = False,
) -> Callable[[F], F]:
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

    NeMo's keywords mean what they mean there: ``output_mapping`` reads the return value
    (``output_mapping(value)`` is True: block; it must answer a bool), for an action that
    returns a score or a label rather than a verdict. ``is_system_action`` and
    ``execute_async`` are about how Colang calls an action; a rail always awaits its action,
    so they change nothing here and are accepted as written.
    """
    if callable(name):
        raise TypeError("use @action() or @action(name=...), with parentheses")
    if name is not None and not isinstance(name, str):
        # NeMo's first positional parameter is is_system_action: @action(True) is NeMo's.
        raise TypeError(
            f"@action(): name must be a string, got {name!r}; "
            "write NeMo's flags by keyword: @action(is_system_action=True)"
        )
    if output_mapping is not None and not callable(output_mapping):
        raise TypeError(f"@action(): output_mapping must be callable, got {output_mapping!r}")
    del is_system_action, execute_async  # Colang's scheduling: nothing to do for a rail

    def mark(fn: F) -> F:
        setattr(fn, ACTION_NAME_ATTR, name or fn.__name__)
        setattr(fn, ACTION_BLOCKING_ATTR, blocking)
        setattr(fn, ACTION_OUTPUT_MAPPING_ATTR, output_mapping)
        return fn

    return mark


def _nemo_meta(fn: Any) -> dict[str, Any]:
    """What NeMo's own ``@action`` put on ``fn`` (when NeMo Guardrails is installed and
    actions.py uses it), else nothing."""
    meta = getattr(fn, "action_meta", None)
    return meta if isinstance(meta, dict) else {}


def action_name_of(fn: Any) -> str | None:
    """The name ``fn`` was marked with, by railstream's ``@action`` or by NeMo's."""
    name = getattr(fn, ACTION_NAME_ATTR, None)
    if isinstance(name, str):
        return name
    name = _nemo_meta(fn).get("name")
    return name if isinstance(name, str) else None


def output_mapping_of(fn: Any) -> Callable[[Any], Any] | None:
    """``fn``'s output mapping, from railstream's ``@action`` or NeMo's, if it has one."""
    mapping = getattr(fn, ACTION_OUTPUT_MAPPING_ATTR, None) or _nemo_meta(fn).get("output_mapping")
    return mapping if callable(mapping) else None


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
        with nemo_imports():
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
        if isinstance(exc, ImportError) and is_unprovided_nemo_import(exc):
            problem = unprovided_nemo_import(exc)
        raise ConfigError(
            [ConfigProblem(file=str(path), line=line, path="", problem=problem)]
        ) from exc
    finally:
        sys.modules.pop(module_name, None)
    found: dict[str, Callable[..., Any]] = {}
    for value in vars(module).values():
        action_name = action_name_of(value)
        if callable(value) and action_name is not None:
            found[action_name] = value
    return found
