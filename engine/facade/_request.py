"""The checks on what a call was given (its messages, or prompt, or generator alone), and the
conversation and context variables they come to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from railstream.stages import InvalidRequestError

__all__ = ["checked_conversation"]

_ROLES = ("system", "user", "assistant", "tool", "developer")


def checked_conversation(
    messages: Sequence[Mapping[str, Any]] | None,
    prompt: str | None,
    generator: AsyncIterator[str] | None,
    *,
    input_flows: Sequence[str],
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """The call's conversation without its context messages, and their variables (the last
    one wins a name). ``InvalidRequestError`` for what no call can run; ``input_flows``: the
    config's input rails, which need a user message."""
    if messages is not None and prompt is not None:
        raise InvalidRequestError("give either messages= or prompt=, not both")
    if messages is None and prompt is None and generator is None:
        raise InvalidRequestError("give messages= or prompt= (or generator= to stream)")
    if messages is None and prompt is None:
        # NeMo's stream_async(generator=gen): the generator's text through the output
        # rails. There is no user message for input rails to check: refused, not skipped.
        if input_flows:
            raise InvalidRequestError(
                "this config has input rails: pass messages= (or prompt=) with the user's "
                "message for them to check, along with generator="
            )
        checked: tuple[dict[str, Any], ...] = ()
    elif prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidRequestError(f"prompt: expected a string, got {type(prompt).__name__}")
        checked = ({"role": "user", "content": prompt},)
    else:
        checked = _validate_messages(messages)
    # Context messages become variables; the model never sees them.
    context_vars: dict[str, Any] = {}
    for message in checked:
        if message["role"] == "context":
            context_vars.update(message["content"])
    checked = tuple(m for m in checked if m["role"] != "context")
    if not checked and (messages is not None or prompt is not None):
        raise InvalidRequestError("messages: only context messages; give the conversation too")
    return checked, context_vars


def _validate_messages(messages: object) -> tuple[dict[str, Any], ...]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages: expected a list of messages, got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidRequestError("messages: the list is empty; give at least one message")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{i}]: expected a dict with role and content, got {type(message).__name__}"
            )
        role = message.get("role")
        if role == "context":
            # NeMo's context message: variables for the actions, never sent to the model.
            content = message.get("content")
            if not isinstance(content, Mapping) or not all(isinstance(k, str) for k in content):
                raise InvalidRequestError(
                    f"messages[{i}].content: a context message holds a dict of variables, "
                    f"got {type(content).__name__}"
                )
            checked.append({"role": "context", "content": dict(content)})
            continue
        if role not in _ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role: expected one of {', '.join((*_ROLES, 'context'))}, "
                f"got {role!r}"
            )
        content = message.get("content")
        if not isinstance(content, str) and not (content is None and role in ("assistant", "tool")):
            raise InvalidRequestError(
                f"messages[{i}].content: expected a string, got {type(content).__name__}"
            )
        checked.append(dict(message))
    return tuple(checked)
