"""``${VAR}`` and ``${VAR:-default}`` in config.yml's strings, expanded from the environment
(endpoints and model names often come from it: one config, many deployments)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._converter import Path

__all__ = ["interpolate"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its ``${VAR}`` references expanded, and the names that were not set."""
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _ENV_REF.sub(one, text), missing


def interpolate(value: Any, path: Path, environ: Mapping[str, str]) -> Iterator[tuple[Path, str]]:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in place in the strings under ``value``."""
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in list(items):
        if isinstance(item, str) and "${" in item:
            expanded, missing = _expand(item, environ)
            if not missing:  # else keep the reference, so no second error follows from a blank
                value[key] = expanded
            for name in missing:
                yield (
                    (*path, key),
                    f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
                )
        elif isinstance(item, dict | list):
            yield from interpolate(item, (*path, key), environ)
