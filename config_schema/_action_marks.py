"""The ``@action()`` marker: what it sets on a function, and how a function's marks are read
(railstream's, or those NeMo's own ``@action`` leaves in ``action_meta``).

Both the loading of a config folder's ``actions.py`` and NeMo's import shim use it, so it
imports nothing of theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "ACTION_BLOCKING_ATTR",
    "ACTION_NAME_ATTR",
    "ACTION_OUTPUT_MAPPING_ATTR",
    "action",
    "action_name_of",
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
