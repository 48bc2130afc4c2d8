"""A YAML file as the loader reads it: parsed with ruamel's round-trip loader so that each
node keeps its line, and a path into it (``rails.output.flows[1]``) placed at that line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any

import attrs
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ._converter import Path, type_name
from ._errors import ConfigError, ConfigProblem

__all__ = ["Document", "format_path", "parse_document", "plain", "read_source"]


@attrs.frozen
class Document:
    """One YAML file as read: its name for messages, and its node tree for line numbers."""

    file: str
    root: Any

    def line(self, path: Path) -> int | None:
        """The line of the deepest node along ``path`` that exists (1-based)."""
        node, line = self.root, None
        for key in path:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lc.item(key)[0] + 1
            else:
                break
            node = node[key]
        return line if line is not None else (1 if path else None)


def format_path(path: Path) -> str:
    """``path`` as a user writes it: ``rails.output.flows[1]``."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def plain(node: Any) -> Any:
    """Plain Python data from ruamel's round-trip nodes (which subclass int, float, str)."""
    if isinstance(node, Mapping):
        return {str(k) if isinstance(k, str) else k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def parse_document(text: str, file: str) -> Document:
    """``text`` parsed, or a :class:`ConfigError` at the line YAML's parser stopped at."""
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([ConfigProblem(file=file, line=line, path="", problem=problem)]) from None
    except YAMLError as exc:
        raise ConfigError(
            [ConfigProblem(file=file, line=None, path="", problem=str(exc))]
        ) from None
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        problem = f"expected a mapping at the top level, got {type_name(plain(root))}"
        raise ConfigError([ConfigProblem(file=file, line=1, path="", problem=problem)])
    return Document(file=file, root=root)


def read_source(path: FsPath) -> str:
    """The text of ``path``, or a :class:`ConfigError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigProblem(file=str(path), line=None, path="", problem=f"cannot read: {exc}")]
        ) from None
