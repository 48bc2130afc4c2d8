"""A message's content as OpenAI's API sends it: a string, or a list of content parts
(``[{"type": "text", "text": "..."}, {"type": "image_url", ...}]``, what the openai SDK,
LangChain and most chat UIs send for models that take more than text)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["content_text", "non_text_parts"]


def content_text(content: Any) -> str:
    """The text rails read of ``content``: the string itself, or its text parts joined as the
    model reads them, one after another (a text split over two parts is still seen whole)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def non_text_parts(content: Any) -> list[str]:
    """The types of ``content``'s parts that are not text (images, audio, files)."""
    if not isinstance(content, list):
        return []
    return [str(part.get("type")) for part in content if part.get("type") != "text"]
