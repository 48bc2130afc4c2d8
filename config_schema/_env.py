"""``${VAR}`` and ``${VAR:-default}`` in config.yml's strings, expanded from the environment
(endpoints and model names often come from it: one config, many deployments)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._converter import Path

__all__ = ["interpolate", "unset_key_variables"]

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
                    f"{_unset(name)} (write ${{{name}:-default}} for a default)",
                )
        elif isinstance(item, dict | list):
            yield from interpolate(item, (*path, key), environ)


def _unset(name: str) -> str:
    # One wording for both ways a config names a variable: ${NAME} and api_key_env_var.
    return f"environment variable {name} is not set"


def _reads_key_variable(holder: dict[str, Any], params: Any) -> str | None:
    """The variable an ``api_key_env_var`` has the key read from; None when a key is given
    (``api_key`` set, or null for no key at all, as for ``nim`` without NVIDIA_API_KEY)."""
    name = holder.get("api_key_env_var")
    if not isinstance(name, str) or not name:
        return None
    if isinstance(params, dict) and "api_key" in params:
        key = params["api_key"]
        if key is None or (isinstance(key, str) and key):
            return None
    return name


def unset_key_variables(data: Any, environ: Mapping[str, str]) -> Iterator[tuple[Path, str]]:
    """Each ``api_key_env_var`` (a model's, jailbreak detection's) naming a variable that is not
    set: the user named the key to send, so requests must not go out without it."""
    if not isinstance(data, dict):
        return
    models = data.get("models")
    for i, model in enumerate(models if isinstance(models, list) else ()):
        if isinstance(model, dict):
            name = _reads_key_variable(model, model.get("parameters"))
            if name is not None and not environ.get(name):
                yield ("models", i, "api_key_env_var"), _unset(name)
    section: Any = data
    for key in ("rails", "config", "jailbreak_detection"):
        section = section.get(key) if isinstance(section, dict) else None
    if isinstance(section, dict):
        name = _reads_key_variable(section, section)
        if name is not None and not environ.get(name):
            yield ("rails", "config", "jailbreak_detection", "api_key_env_var"), _unset(name)
