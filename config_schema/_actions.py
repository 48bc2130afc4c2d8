"""The loading of a config folder's ``actions.py``: its ``@action()`` functions, by name."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._action_marks import action_name_of
from ._errors import ConfigError, ConfigProblem
from ._nemo_imports import (
    is_unprovided_nemo_import,
    nemo_imports,
    unprovided_nemo_import,
)

__all__ = ["load_actions_file"]


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
        frames = traceback.extract_tb(exc.__traceback__)
        resolved = path.resolve()  # the frames' names are absolute, a folder given may not be
        for frame in frames:
            if Path(frame.filename).resolve() == resolved:
                line = frame.lineno
        problem = f"error while importing: {type(exc).__name__}: {exc}"
        # Raised in a module actions.py imports: that line too (the user's code, not this
        # package's: its @action and nemoguardrails stand-ins already say what to change).
        ours = Path(__file__).resolve().parent
        theirs = [f for f in frames if not Path(f.filename).resolve().is_relative_to(ours)]
        if theirs and line is not None and Path(theirs[-1].filename).resolve() != resolved:
            problem += f" (at {theirs[-1].filename}:{theirs[-1].lineno})"
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
