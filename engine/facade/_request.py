"""The checks on what a call was given (its messages, or prompt, or generator alone), and the
conversation and context variables they come to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from railstream.stages import InvalidRequestError, non_text_parts

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
        _check_rails_can_read(checked, input_flows)
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
        if isinstance(content, list):
            _check_parts(content, f"messages[{i}].content")
        elif not isinstance(content, str) and not (
            content is None and role in ("assistant", "tool")
        ):
            raise InvalidRequestError(
                f"messages[{i}].content: expected a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        checked.append(dict(message))
    return tuple(checked)


def _check_parts(parts: list[Any], where: str) -> None:
    """OpenAI's content parts: each a dict with a ``type``; a text part's ``text`` a string.
    The parts go to the model as sent; the rails read their text."""
    if not parts:
        raise InvalidRequestError(f"{where}: the list of content parts is empty")
    for j, part in enumerate(parts):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise InvalidRequestError(
                f"{where}[{j}]: expected a content part, a dict with a type (text, image_url, "
                f"...), got {part!r:.80}"
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequestError(f"{where}[{j}].text: expected a string")


def _check_rails_can_read(checked: tuple[dict[str, Any], ...], input_flows: Sequence[str]) -> None:
    """Input rails read the last user message's text: one with parts they cannot read (an
    image, audio) is refused rather than let through unchecked (fail closed). Without input
    rails, such parts go to the model as they are."""
    if not input_flows:
        return
    for i in range(len(checked) - 1, -1, -1):
        if checked[i]["role"] != "user":
            continue
        unread = non_text_parts(checked[i].get("content"))
        if unread:
            raise InvalidRequestError(
                f"messages[{i}].content: this config's input rails read text only and cannot "
                f"check its {', '.join(sorted(set(unread)))} part(s); send text, or use a "
                "config without input rails"
            )
        return
